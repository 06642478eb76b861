package dev.shufflenetedge.core;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.Map;

/**
 * The preprocessing and quantization constants of one model, read from the {@code model_config.json}
 * that {@code shufflenet-edge android-assets} writes into the app's assets. The app holds no other copy
 * of these numbers.
 */
public final class ModelConstants {
    public static final String SCHEMA = "shufflenet-edge/android-assets/1";

    /** Element type of a tensor as the app must fill or read it. */
    public enum DType {
        FLOAT32, INT8, UINT8;

        static DType parse(String s) {
            if ("float32".equals(s)) {
                return FLOAT32;
            }
            if ("int8".equals(s)) {
                return INT8;
            }
            if ("uint8".equals(s)) {
                return UINT8;
            }
            throw new IllegalArgumentException("dtype must be float32, int8 or uint8, got " + s);
        }

        public boolean quantized() {
            return this != FLOAT32;
        }
    }

    public final int inputSize;
    public final int resizeSize;
    public final float[] mean;
    public final float[] std;
    /** "nhwc" or "nchw". */
    public final String layout;
    public final DType inputType;
    /** Scale and zero point of the input; scale 0 for float inputs. */
    public final float inputScale;
    public final int inputZeroPoint;
    public final DType outputType;
    public final float outputScale;
    public final int outputZeroPoint;
    public final int numClasses;
    public final String modelFile;
    public final String labelsFile;
    public final String modelName;
    public final String precision;

    private ModelConstants(Map<String, Object> root) {
        Map<String, Object> pre = MiniJson.object(root, "preprocess");
        Map<String, Object> in = MiniJson.object(root, "input");
        Map<String, Object> out = MiniJson.object(root, "output");
        inputSize = MiniJson.integer(pre, "input_size");
        resizeSize = MiniJson.integer(pre, "resize_size");
        mean = floats(MiniJson.list(pre, "mean"), "preprocess.mean");
        std = floats(MiniJson.list(pre, "std"), "preprocess.std");
        String interp = MiniJson.optString(pre, "interpolation", "bilinear");
        if (!"bilinear".equals(interp)) {
            throw new IllegalArgumentException("only bilinear resizing is implemented, constants ask for " + interp);
        }
        for (float s : std) {
            if (!(s > 0f)) {
                throw new IllegalArgumentException("preprocess.std must be positive, got " + s);
            }
        }
        if (inputSize < 1 || resizeSize < 1) {
            throw new IllegalArgumentException("input_size and resize_size must be positive");
        }
        layout = MiniJson.optString(in, "layout", "nhwc");
        if (!"nhwc".equals(layout) && !"nchw".equals(layout)) {
            throw new IllegalArgumentException("input.layout must be nhwc or nchw, got " + layout);
        }
        inputType = DType.parse(MiniJson.string(in, "dtype"));
        inputScale = (float) MiniJson.optDouble(in, "scale", 0.0);
        inputZeroPoint = (int) MiniJson.optDouble(in, "zero_point", 0.0);
        if (inputType.quantized() && !(inputScale > 0f)) {
            throw new IllegalArgumentException("input is " + inputType + " but input.scale is " + inputScale);
        }
        outputType = DType.parse(MiniJson.string(out, "dtype"));
        outputScale = (float) MiniJson.optDouble(out, "scale", 0.0);
        outputZeroPoint = (int) MiniJson.optDouble(out, "zero_point", 0.0);
        if (outputType.quantized() && !(outputScale > 0f)) {
            throw new IllegalArgumentException("output is " + outputType + " but output.scale is " + outputScale);
        }
        numClasses = (int) MiniJson.optDouble(root, "num_classes", 0.0);
        modelFile = MiniJson.optString(root, "model_file", "model.tflite");
        labelsFile = MiniJson.optString(root, "labels_file", "labels.txt");
        modelName = MiniJson.optString(root, "model", "");
        precision = MiniJson.optString(root, "precision", "");
    }

    private static float[] floats(List<Object> xs, String what) {
        if (xs.size() != 3) {
            throw new IllegalArgumentException(what + " must have 3 values (RGB), got " + xs.size());
        }
        float[] r = new float[3];
        for (int i = 0; i < 3; i++) {
            // (float) of the JSON double: the same rounding numpy applies in np.asarray(mean, np.float32).
            r[i] = (float) ((Number) xs.get(i)).doubleValue();
        }
        return r;
    }

    /** Parses the constants JSON (the text of model_config.json). */
    public static ModelConstants parse(String json) {
        Object root = MiniJson.parse(json);
        if (!(root instanceof Map)) {
            throw new IllegalArgumentException("model config must be a JSON object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) root;
        Object schema = m.get("schema");
        if (schema != null && !SCHEMA.equals(schema)) {
            throw new IllegalArgumentException("model config schema is " + schema + ", this app reads " + SCHEMA);
        }
        return new ModelConstants(m);
    }

    public static ModelConstants read(InputStream in) throws IOException {
        return parse(readUtf8(in));
    }

    public static String readUtf8(InputStream in) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        byte[] chunk = new byte[8192];
        int n;
        while ((n = in.read(chunk)) > 0) {
            buf.write(chunk, 0, n);
        }
        return new String(buf.toByteArray(), "UTF-8");
    }

    public int inputElements() {
        return inputSize * inputSize * 3;
    }

    /** Bytes of the input tensor: 4 per element for float32, 1 for int8/uint8. */
    public int inputBytes() {
        return inputElements() * (inputType == DType.FLOAT32 ? 4 : 1);
    }
}
