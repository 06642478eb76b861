package dev.shufflenetedge.demo;

import java.io.Closeable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Locale;

import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

import dev.shufflenetedge.core.ModelConstants;
import dev.shufflenetedge.core.Postprocess;
import dev.shufflenetedge.core.Preprocessor;

/**
 * The LiteRT interpreter (XNNPACK on the CPU by default, or the GPU delegate) around the plain-Java core.
 * One instance per model/delegate/thread setting; not thread-safe (the camera analyzer runs on one thread).
 */
final class Classifier implements Closeable {
    /** Latencies of one frame in milliseconds, and its top-k. */
    static final class Result {
        final double preprocessMs;
        final double inferenceMs;
        final double postprocessMs;
        final List<Postprocess.Prediction> top;

        Result(double pre, double inf, double post, List<Postprocess.Prediction> top) {
            this.preprocessMs = pre;
            this.inferenceMs = inf;
            this.postprocessMs = post;
            this.top = top;
        }
    }

    final ModelConstants constants;
    final boolean gpu;
    final int threads;
    /** Milliseconds spent creating the interpreter (and the delegate). */
    final double initMs;
    private final Interpreter interpreter;
    private final GpuDelegate gpuDelegate;
    private final Preprocessor pre;
    private final ByteBuffer input;
    private final ByteBuffer output;

    /**
     * @param model the .tflite bytes (a MappedByteBuffer from the assets or a file, or a direct buffer)
     * @param useGpu the GPU delegate instead of XNNPACK; refused with a message where the device has no support
     */
    Classifier(ByteBuffer model, ModelConstants constants, boolean useGpu, int threads) {
        this.constants = constants;
        this.threads = threads;
        long t0 = System.nanoTime();
        Interpreter.Options options = new Interpreter.Options();
        GpuDelegate delegate = null;
        if (useGpu) {
            CompatibilityList compat = new CompatibilityList();
            if (!compat.isDelegateSupportedOnThisDevice()) {
                compat.close();
                throw new IllegalStateException("the GPU delegate is not supported on this device");
            }
            delegate = new GpuDelegate(compat.getBestOptionsForThisDevice());
            compat.close();
            options.addDelegate(delegate);
        } else {
            options.setUseXNNPACK(true);
            options.setNumThreads(threads);
        }
        this.gpu = useGpu;
        this.gpuDelegate = delegate;
        this.interpreter = new Interpreter(model, options);
        this.initMs = (System.nanoTime() - t0) / 1e6;
        checkAgainstModel();
        this.pre = new Preprocessor(constants);
        this.input = ByteBuffer.allocateDirect(constants.inputBytes()).order(ByteOrder.nativeOrder());
        Tensor out = interpreter.getOutputTensor(0);
        this.output = ByteBuffer.allocateDirect(out.numBytes()).order(ByteOrder.nativeOrder());
    }

    /** The assets' constants must describe this very model: a mismatch means a stale or hand-edited config. */
    private void checkAgainstModel() {
        Tensor in = interpreter.getInputTensor(0);
        int[] shape = in.shape();
        int s = constants.inputSize;
        if (shape.length != 4 || shape[0] != 1 || shape[1] != s || shape[2] != s || shape[3] != 3) {
            throw new IllegalStateException("model input shape " + java.util.Arrays.toString(shape)
                    + " does not match model_config.json (1, " + s + ", " + s + ", 3): rerun shufflenet-edge android-assets");
        }
        checkType("input", in, constants.inputType, constants.inputScale, constants.inputZeroPoint);
        Tensor out = interpreter.getOutputTensor(0);
        checkType("output", out, constants.outputType, constants.outputScale, constants.outputZeroPoint);
    }

    private static void checkType(String what, Tensor t, ModelConstants.DType want, float scale, int zp) {
        DataType dt = t.dataType();
        boolean ok = (want == ModelConstants.DType.FLOAT32 && dt == DataType.FLOAT32)
                || (want == ModelConstants.DType.INT8 && dt == DataType.INT8)
                || (want == ModelConstants.DType.UINT8 && dt == DataType.UINT8);
        if (!ok) {
            throw new IllegalStateException(what + " is " + dt + " in the model but " + want + " in model_config.json");
        }
        if (want.quantized()) {
            Tensor.QuantizationParams q = t.quantizationParams();
            if (Math.abs(q.getScale() - scale) > 1e-6f * Math.max(1f, scale) || q.getZeroPoint() != zp) {
                throw new IllegalStateException(String.format(Locale.ROOT,
                        "%s quantization is scale %g zero point %d in the model, scale %g zero point %d in model_config.json",
                        what, q.getScale(), q.getZeroPoint(), scale, zp));
            }
        }
    }

    /** Classifies ARGB pixels of any size (already upright). */
    Result classify(int[] argb, int width, int height, int k) {
        long t0 = System.nanoTime();
        input.rewind();
        pre.fill(argb, width, height, input);
        input.rewind();
        long t1 = System.nanoTime();
        output.rewind();
        interpreter.run(input, output);
        long t2 = System.nanoTime();
        float[] logits = readLogits();
        List<Postprocess.Prediction> top = Postprocess.classify(logits, k);
        long t3 = System.nanoTime();
        return new Result((t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, top);
    }

    /** Inference alone on whatever the input buffer holds (the benchmark's timed loop). */
    double invokeOnly() {
        input.rewind();
        output.rewind();
        long t0 = System.nanoTime();
        interpreter.run(input, output);
        return (System.nanoTime() - t0) / 1e6;
    }

    /** Fills the input buffer once (the benchmark times inference on a fixed, preprocessed frame). */
    double prepare(int[] argb, int width, int height) {
        long t0 = System.nanoTime();
        input.rewind();
        pre.fill(argb, width, height, input);
        input.rewind();
        return (System.nanoTime() - t0) / 1e6;
    }

    float[] readLogits() {
        output.rewind();
        int n = output.remaining();
        if (constants.outputType == ModelConstants.DType.FLOAT32) {
            float[] f = new float[n / 4];
            output.asFloatBuffer().get(f);
            return f;
        }
        byte[] raw = new byte[n];
        output.get(raw);
        return Postprocess.dequantize(raw, constants.outputType == ModelConstants.DType.INT8,
                constants.outputScale, constants.outputZeroPoint);
    }

    @Override
    public void close() {
        interpreter.close();
        if (gpuDelegate != null) {
            gpuDelegate.close();
        }
    }
}
