package dev.shufflenetedge.core;

import java.util.Locale;

/**
 * The JSON the benchmark activity writes to the app's files directory and the adb target pulls
 * ({@code shufflenet_edge/runtimes/adb.py} reads exactly these keys), plus the one summary line for logcat.
 * Built here, in plain Java, so its format is unit-tested on the JVM.
 */
public final class BenchmarkReport {
    public static final String SCHEMA = "shufflenet-edge/android-bench/1";
    /** logcat tag of the summary line. */
    public static final String TAG = "ShuffleNetEdgeBench";

    public String runId = "";
    public String model = "";
    public long modelSizeBytes = -1;
    public String delegate = "cpu";
    public int threads = 1;
    public int runs;
    public int warmup;
    public double initMs = Double.NaN;
    public double firstInferenceMs = Double.NaN;
    public double peakRssMb = Double.NaN;
    public double[] inferenceMs = new double[0];
    public double[] preprocessMs = new double[0];
    public double[] postprocessMs = new double[0];
    public String runtime = "litert";
    public String runtimeVersion = "";
    public String deviceModel = "";
    public String deviceManufacturer = "";
    public int sdkInt;
    public String release = "";
    public String abi = "";
    public String error;

    public String toJson() {
        StringBuilder b = new StringBuilder(256 + 12 * inferenceMs.length);
        b.append("{\n");
        field(b, "schema", LatencyStats.str(SCHEMA));
        field(b, "run_id", LatencyStats.str(runId));
        field(b, "status", LatencyStats.str(error == null ? "ok" : "error"));
        field(b, "reason", LatencyStats.str(error));
        field(b, "model", LatencyStats.str(model));
        field(b, "model_size_bytes", modelSizeBytes >= 0 ? Long.toString(modelSizeBytes) : "null");
        field(b, "runtime", LatencyStats.str(runtime));
        field(b, "runtime_version", LatencyStats.str(runtimeVersion));
        field(b, "delegate", LatencyStats.str(delegate));
        field(b, "threads", Integer.toString(threads));
        field(b, "runs", Integer.toString(inferenceMs.length));
        field(b, "warmup", Integer.toString(warmup));
        field(b, "init_ms", LatencyStats.num(initMs));
        field(b, "first_inference_ms", LatencyStats.num(firstInferenceMs));
        field(b, "peak_rss_mb", LatencyStats.num(peakRssMb));
        field(b, "latency_ms", inferenceMs.length > 0 ? LatencyStats.of(inferenceMs).toJson() : "null");
        field(b, "preprocess_ms", preprocessMs.length > 0 ? LatencyStats.of(preprocessMs).toJson() : "null");
        field(b, "postprocess_ms", postprocessMs.length > 0 ? LatencyStats.of(postprocessMs).toJson() : "null");
        StringBuilder s = new StringBuilder("[");
        for (int i = 0; i < inferenceMs.length; i++) {
            if (i > 0) {
                s.append(", ");
            }
            s.append(LatencyStats.num(inferenceMs[i]));
        }
        field(b, "samples_ms", s.append(']').toString());
        b.append("  \"device\": {")
                .append("\"model\": ").append(LatencyStats.str(deviceModel))
                .append(", \"manufacturer\": ").append(LatencyStats.str(deviceManufacturer))
                .append(", \"sdk_int\": ").append(sdkInt)
                .append(", \"release\": ").append(LatencyStats.str(release))
                .append(", \"abi\": ").append(LatencyStats.str(abi))
                .append("}\n}\n");
        return b.toString();
    }

    private static void field(StringBuilder b, String key, String json) {
        b.append("  ").append(LatencyStats.str(key)).append(": ").append(json).append(",\n");
    }

    /** The single logcat line: greppable key=value pairs, the run id first. */
    public String summaryLine(String jsonPath) {
        if (error != null) {
            return String.format(Locale.ROOT, "run_id=%s status=error reason=%s json=%s", runId, error.replace('\n', ' '), jsonPath);
        }
        LatencyStats st = LatencyStats.of(inferenceMs);
        return String.format(Locale.ROOT,
                "run_id=%s status=ok model=%s delegate=%s threads=%d runs=%d median_ms=%.3f p90_ms=%.3f mean_ms=%.3f init_ms=%.1f json=%s",
                runId, model, delegate, threads, inferenceMs.length, st.median, st.p90, st.mean, initMs, jsonPath);
    }
}
