package dev.shufflenetedge.demo;

import android.app.Activity;
import android.content.Intent;
import android.os.Build;
import android.os.Bundle;
import android.util.Log;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileOutputStream;
import java.io.FileReader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.UUID;

import dev.shufflenetedge.core.BenchmarkReport;
import dev.shufflenetedge.core.ModelConstants;

/**
 * The on-device benchmark, no camera:
 *
 * <pre>
 * adb shell am start -n dev.shufflenetedge.demo/.BenchmarkActivity \
 *     --es model /data/local/tmp/shufflenet-edge-XXXX/model.tflite --ei runs 100 --ei warmup 10 \
 *     --ei threads 4 --es delegate cpu --es run_id XXXX
 * </pre>
 *
 * Extras (all optional): {@code model} (a file path on the device; default: the model in the assets, with its
 * model_config.json), {@code runs} (50), {@code warmup} (5), {@code threads} (4), {@code delegate} (cpu|gpu),
 * {@code run_id} (random). Inference is timed on one preprocessed synthetic frame; preprocessing and
 * postprocessing are timed separately on every run. Writes {@code bench_<run_id>.json}
 * ({@link BenchmarkReport}) to the app's files directory and, when there is one, its external files
 * directory (readable with plain {@code adb pull}), then logs one summary line under the tag
 * {@code ShuffleNetEdgeBench} and finishes.
 */
public class BenchmarkActivity extends Activity {
    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        final Intent intent = getIntent();
        new Thread(() -> {
            run(intent);
            runOnUiThread(this::finish);
        }, "shufflenet-edge-benchmark").start();
    }

    private void run(Intent intent) {
        BenchmarkReport r = new BenchmarkReport();
        String runId = intent.getStringExtra("run_id");
        r.runId = runId != null && !runId.isEmpty() ? runId : UUID.randomUUID().toString().substring(0, 8);
        r.runs = Math.max(1, intent.getIntExtra("runs", 50));
        r.warmup = Math.max(0, intent.getIntExtra("warmup", 5));
        r.threads = Math.max(1, intent.getIntExtra("threads", 4));
        String delegate = intent.getStringExtra("delegate");
        r.delegate = "gpu".equals(delegate) ? "gpu" : "cpu";
        r.runtimeVersion = BuildConfig.LITERT_VERSION;
        r.deviceModel = Build.MODEL;
        r.deviceManufacturer = Build.MANUFACTURER;
        r.sdkInt = Build.VERSION.SDK_INT;
        r.release = Build.VERSION.RELEASE;
        r.abi = Build.SUPPORTED_ABIS.length > 0 ? Build.SUPPORTED_ABIS[0] : "";
        String modelPath = intent.getStringExtra("model");
        try {
            ModelConstants c = ModelFiles.constants(this);
            ByteBuffer model;
            if (modelPath != null && !modelPath.isEmpty()) {
                File f = new File(modelPath);
                r.model = modelPath;
                r.modelSizeBytes = f.length();
                model = ModelFiles.mapFile(f);
            } else {
                r.model = "asset:" + c.modelFile;
                r.modelSizeBytes = ModelFiles.assetLength(this, c.modelFile);
                model = ModelFiles.mapAsset(this, c.modelFile);
            }
            measure(r, model, c);
        } catch (Throwable e) { // report every failure in the JSON: the host is waiting for it
            r.error = e.getClass().getSimpleName() + ": " + e.getMessage();
            Log.e(BenchmarkReport.TAG, "benchmark failed", e);
        }
        r.peakRssMb = peakRssMb();
        String name = "bench_" + r.runId + ".json";
        String where = write(getFilesDir(), name, r.toJson());
        File ext = getExternalFilesDir(null);
        if (ext != null) {
            write(ext, name, r.toJson());
        }
        Log.i(BenchmarkReport.TAG, r.summaryLine(where));
    }

    private static void measure(BenchmarkReport r, ByteBuffer model, ModelConstants c) {
        // A deterministic 640x480 frame (gradients), so preprocessing costs what a camera frame costs.
        int w = 640;
        int h = 480;
        int[] argb = new int[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                argb[y * w + x] = 0xFF000000 | ((x * 255 / w) << 16) | ((y * 255 / h) << 8) | ((x + y) & 0xFF);
            }
        }
        Classifier cl = new Classifier(model, c, "gpu".equals(r.delegate), r.threads);
        try {
            r.initMs = cl.initMs;
            cl.prepare(argb, w, h);
            r.firstInferenceMs = cl.invokeOnly();
            for (int i = 0; i < r.warmup; i++) {
                cl.invokeOnly();
            }
            r.inferenceMs = new double[r.runs];
            r.preprocessMs = new double[r.runs];
            r.postprocessMs = new double[r.runs];
            for (int i = 0; i < r.runs; i++) {
                r.inferenceMs[i] = cl.invokeOnly();
            }
            for (int i = 0; i < r.runs; i++) {
                Classifier.Result res = cl.classify(argb, w, h, 5);
                r.preprocessMs[i] = res.preprocessMs;
                r.postprocessMs[i] = res.postprocessMs;
            }
        } finally {
            cl.close();
        }
    }

    /** Writes to a temporary name and renames, so the host never pulls half a file. Returns the path. */
    private static String write(File dir, String name, String json) {
        File tmp = new File(dir, name + ".tmp");
        File dst = new File(dir, name);
        try {
            FileOutputStream out = new FileOutputStream(tmp);
            try {
                out.write(json.getBytes("UTF-8"));
                out.getFD().sync();
            } finally {
                out.close();
            }
            if (!tmp.renameTo(dst)) {
                throw new IOException("rename " + tmp + " -> " + dst + " failed");
            }
        } catch (IOException e) {
            Log.e(BenchmarkReport.TAG, "cannot write " + dst, e);
        }
        return dst.getAbsolutePath();
    }

    /** VmHWM (peak resident set) of this process from /proc/self/status, in MB; NaN when unreadable. */
    private static double peakRssMb() {
        try {
            BufferedReader in = new BufferedReader(new FileReader("/proc/self/status"));
            try {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.startsWith("VmHWM:")) {
                        String kb = line.substring(6).trim().split("\\s+")[0];
                        return Long.parseLong(kb) / 1024.0;
                    }
                }
            } finally {
                in.close();
            }
        } catch (IOException | RuntimeException e) {
            Log.w(BenchmarkReport.TAG, "no VmHWM: " + e);
        }
        return Double.NaN;
    }
}
