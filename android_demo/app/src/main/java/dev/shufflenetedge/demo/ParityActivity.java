package dev.shufflenetedge.demo;

import android.app.Activity;
import android.content.Intent;
import android.os.Bundle;
import android.util.Log;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

import dev.shufflenetedge.core.Npy;

/**
 * On-device numerics for `shufflenet-edge parity ARTIFACT --target adb`: the host pushes the model and an
 * {@code .npy} of input tensors (already in the model's layout and type), this activity runs them one by one
 * and writes the raw output tensors as {@code .npy} (one file per model output, {@code <output>} for the first,
 * {@code <output>.1.npy}, ... for the others); the host pulls them and compares with PyTorch.
 *
 * <pre>
 * adb shell am start -n dev.shufflenetedge.demo/.ParityActivity \
 *     --es model /data/local/tmp/X/model.tflite --es input /data/local/tmp/X/in.npy \
 *     --es output /data/local/tmp/X/out.npy --es delegate cpu --ei threads 4 --es run_id X
 * </pre>
 *
 * With {@code --es delegate gpu} (or {@code nnapi} where the runtime has it) this is the delegate-against-CPU check
 * that users otherwise do with TFLite's inference_diff. When done it writes {@code <output>.done.json}
 * (status, error, delegate, seconds) and logs one line under {@code ShuffleNetEdgeParity}.
 */
public class ParityActivity extends Activity {
    static final String TAG = "ShuffleNetEdgeParity";

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        final Intent intent = getIntent();
        new Thread(() -> {
            run(intent);
            runOnUiThread(this::finish);
        }, "shufflenet-edge-parity").start();
    }

    private void run(Intent intent) {
        String model = intent.getStringExtra("model");
        String input = intent.getStringExtra("input");
        String output = intent.getStringExtra("output");
        String delegate = intent.getStringExtra("delegate");
        String runId = intent.getStringExtra("run_id");
        int threads = Math.max(1, intent.getIntExtra("threads", 4));
        long t0 = System.nanoTime();
        String error = null;
        int samples = 0;
        try {
            if (model == null || input == null || output == null) {
                throw new IllegalArgumentException("extras model, input and output are required");
            }
            samples = infer(new File(model), new File(input), new File(output), delegate, threads);
        } catch (Throwable e) { // the host waits for the done file: every failure goes into it
            error = e.getClass().getSimpleName() + ": " + e.getMessage();
            Log.e(TAG, "parity run failed", e);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        String json = "{\"run_id\": " + q(runId) + ", \"status\": " + q(error == null ? "ok" : "error")
                + ", \"error\": " + q(error) + ", \"delegate\": " + q(delegate == null ? "cpu" : delegate)
                + ", \"threads\": " + threads + ", \"samples\": " + samples + ", \"seconds\": " + seconds
                + ", \"runtime_version\": " + q(BuildConfig.LITERT_VERSION) + "}";
        if (output != null) {
            try (FileOutputStream f = new FileOutputStream(output + ".done.json")) {
                f.write(json.getBytes(Charset.forName("UTF-8")));
            } catch (IOException e) {
                Log.e(TAG, "cannot write " + output + ".done.json", e);
            }
        }
        Log.i(TAG, "parity " + (runId == null ? "" : runId) + " " + (error == null ? "ok" : "error: " + error)
                + " samples=" + samples);
    }

    private static String q(String s) {
        if (s == null) {
            return "null";
        }
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }

    private static Npy.DType npyType(DataType t) {
        switch (t) {
            case FLOAT32:
                return Npy.DType.FLOAT32;
            case INT8:
                return Npy.DType.INT8;
            case UINT8:
                return Npy.DType.UINT8;
            case INT32:
                return Npy.DType.INT32;
            default:
                throw new IllegalArgumentException("unsupported tensor type " + t);
        }
    }

    private static int infer(File model, File inputFile, File outputFile, String delegate, int threads) throws IOException {
        Npy in = Npy.read(inputFile);
        Interpreter.Options options = new Interpreter.Options();
        GpuDelegate gpu = null;
        if ("gpu".equals(delegate)) {
            CompatibilityList compat = new CompatibilityList();
            if (!compat.isDelegateSupportedOnThisDevice()) {
                compat.close();
                throw new IllegalStateException("the GPU delegate is not supported on this device");
            }
            gpu = new GpuDelegate(compat.getBestOptionsForThisDevice());
            compat.close();
            options.addDelegate(gpu);
        } else {
            options.setUseXNNPACK(true);
            options.setNumThreads(threads);
        }
        Interpreter it = new Interpreter(ModelFiles.mapFile(model), options);
        try {
            Tensor t = it.getInputTensor(0);
            if (npyType(t.dataType()) != in.dtype) {
                throw new IllegalArgumentException("input file holds " + in.dtype + " but the model takes " + t.dataType());
            }
            int n = in.shape[0];
            int outs = it.getOutputTensorCount();
            List<List<ByteBuffer>> results = new ArrayList<List<ByteBuffer>>();
            for (int o = 0; o < outs; o++) {
                results.add(new ArrayList<ByteBuffer>());
            }
            for (int i = 0; i < n; i++) {
                ByteBuffer x = ByteBuffer.allocateDirect(t.numBytes()).order(ByteOrder.nativeOrder());
                ByteBuffer item = in.item(i);
                if (item.remaining() != t.numBytes()) {
                    throw new IllegalArgumentException("sample " + i + " has " + item.remaining() + " bytes, the model input "
                            + t.numBytes());
                }
                x.put(item);
                x.rewind();
                Map<Integer, Object> outputs = new HashMap<Integer, Object>();
                for (int o = 0; o < outs; o++) {
                    outputs.put(o, ByteBuffer.allocateDirect(it.getOutputTensor(o).numBytes()).order(ByteOrder.nativeOrder()));
                }
                it.runForMultipleInputsOutputs(new Object[] {x}, outputs);
                for (int o = 0; o < outs; o++) {
                    ByteBuffer b = (ByteBuffer) outputs.get(o);
                    b.rewind();
                    ByteBuffer copy = ByteBuffer.allocate(b.remaining()).order(ByteOrder.LITTLE_ENDIAN);
                    copy.put(b);
                    copy.flip();
                    results.get(o).add(copy);
                }
            }
            for (int o = 0; o < outs; o++) {
                Tensor ot = it.getOutputTensor(o);
                String path = o == 0 ? outputFile.getPath() : outputFile.getPath().replaceAll("\\.npy$", "") + "." + o + ".npy";
                Npy.stack(npyType(ot.dataType()), ot.shape(), results.get(o)).write(new File(path));
            }
            return n;
        } finally {
            it.close();
            if (gpu != null) {
                gpu.close();
            }
        }
    }
}
