package dev.shufflenetedge.core;

import java.nio.ByteBuffer;

/**
 * ARGB pixels to the model's input tensor, exactly as {@code shufflenet_edge.data.Preprocess} does it in
 * Python: resize the shorter side to {@code resize_size} with Pillow's bilinear ({@link BilinearResize}),
 * centre-crop {@code input_size} (offsets rounded half to even, like Python's {@code round}), then
 * {@code (x / 255 - mean) / std} in float32, then, for an int8/uint8 input,
 * {@code clip(rint(x / scale) + zero_point)} with the model input's scale and zero point.
 *
 * <p>Plain Java, no Android imports: compiled and tested on the JVM against golden vectors written by
 * the Python preprocessing.
 */
public final class Preprocessor {
    private final ModelConstants c;

    public Preprocessor(ModelConstants constants) {
        this.c = constants;
    }

    public ModelConstants constants() {
        return c;
    }

    /** Size {w, h} after resizing the shorter side to {@code resizeSize}: Python's int(round(long * s / short)). */
    public static int[] resizedSize(int w, int h, int resizeSize) {
        long s = resizeSize;
        if (w <= h) {
            int nh = (int) Math.max(1, Math.rint((double) (h * s) / w));
            return new int[] {resizeSize, nh};
        }
        int nw = (int) Math.max(1, Math.rint((double) (w * s) / h));
        return new int[] {nw, resizeSize};
    }

    /** Left/top offset of the centre crop: Python's int(round((n - size) / 2.0)), half to even. */
    public static int cropOffset(int n, int size) {
        return (int) Math.rint((n - size) / 2.0);
    }

    /** ARGB (Android's Bitmap.getPixels layout) to RGB bytes; alpha is dropped, as PIL's convert("RGB") does. */
    public static byte[] argbToRgb(int[] argb, int w, int h) {
        if (argb.length < w * h) {
            throw new IllegalArgumentException("expected " + (w * h) + " pixels, got " + argb.length);
        }
        byte[] rgb = new byte[w * h * 3];
        for (int i = 0, o = 0; i < w * h; i++, o += 3) {
            int p = argb[i];
            rgb[o] = (byte) (p >> 16);
            rgb[o + 1] = (byte) (p >> 8);
            rgb[o + 2] = (byte) p;
        }
        return rgb;
    }

    /**
     * Rotates ARGB pixels clockwise by 0, 90, 180 or 270 degrees (a camera frame's rotationDegrees), exactly
     * (no resampling). Returns {pixels, width, height} packed as: the pixel array, and {@code outSize[0..1]}.
     */
    public static int[] rotate(int[] argb, int w, int h, int degrees, int[] outSize) {
        int d = ((degrees % 360) + 360) % 360;
        if (d % 90 != 0) {
            throw new IllegalArgumentException("rotation must be a multiple of 90 degrees, got " + degrees);
        }
        int ow = d == 90 || d == 270 ? h : w;
        int oh = d == 90 || d == 270 ? w : h;
        outSize[0] = ow;
        outSize[1] = oh;
        if (d == 0) {
            return argb;
        }
        int[] out = new int[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int nx;
                int ny;
                if (d == 90) {
                    nx = h - 1 - y;
                    ny = x;
                } else if (d == 180) {
                    nx = w - 1 - x;
                    ny = h - 1 - y;
                } else {
                    nx = y;
                    ny = w - 1 - x;
                }
                out[ny * ow + nx] = argb[y * w + x];
            }
        }
        return out;
    }

    /** RGB bytes of any size to the input_size x input_size RGB crop (HWC, uint8 values in bytes). */
    public byte[] resizeAndCrop(byte[] rgb, int w, int h) {
        int[] n = resizedSize(w, h, c.resizeSize);
        byte[] resized = BilinearResize.resize(rgb, w, h, n[0], n[1]);
        return crop(resized, n[0], n[1], cropOffset(n[0], c.inputSize), cropOffset(n[1], c.inputSize), c.inputSize);
    }

    public byte[] resizeAndCrop(int[] argb, int w, int h) {
        return resizeAndCrop(argbToRgb(argb, w, h), w, h);
    }

    /** PIL's crop: pixels outside the image are 0. */
    static byte[] crop(byte[] rgb, int w, int h, int left, int top, int size) {
        byte[] out = new byte[size * size * 3];
        for (int y = 0; y < size; y++) {
            int sy = y + top;
            if (sy < 0 || sy >= h) {
                continue;
            }
            for (int x = 0; x < size; x++) {
                int sx = x + left;
                if (sx < 0 || sx >= w) {
                    continue;
                }
                int s = (sy * w + sx) * 3;
                int o = (y * size + x) * 3;
                out[o] = rgb[s];
                out[o + 1] = rgb[s + 1];
                out[o + 2] = rgb[s + 2];
            }
        }
        return out;
    }

    /** The crop normalized to float32 in the model's layout (NHWC or NCHW, batch 1). */
    public float[] normalize(byte[] crop) {
        int size = c.inputSize;
        int plane = size * size;
        float[] out = new float[plane * 3];
        boolean nchw = "nchw".equals(c.layout);
        for (int p = 0; p < plane; p++) {
            for (int ch = 0; ch < 3; ch++) {
                // Same float32 operations, in the same order, as numpy: u8 / 255, - mean, / std.
                float x = (crop[p * 3 + ch] & 0xFF) / 255.0f;
                float v = (x - c.mean[ch]) / c.std[ch];
                out[nchw ? ch * plane + p : p * 3 + ch] = v;
            }
        }
        return out;
    }

    /**
     * Float input to int8 or uint8 with the input's scale and zero point, as numpy does in the runner:
     * rint(x / scale) (half to even, float32) + zero_point, clipped to the type's range. Values are
     * returned as raw bytes (int8 two's complement, uint8 0..255).
     */
    public byte[] quantize(float[] x) {
        if (!c.inputType.quantized()) {
            throw new IllegalStateException("the model input is float32: nothing to quantize");
        }
        int lo = c.inputType == ModelConstants.DType.INT8 ? -128 : 0;
        int hi = c.inputType == ModelConstants.DType.INT8 ? 127 : 255;
        byte[] q = new byte[x.length];
        for (int i = 0; i < x.length; i++) {
            float r = (float) Math.rint(x[i] / c.inputScale);
            int v = (int) r + c.inputZeroPoint;
            if (r > 1e9f) {
                v = hi;
            } else if (r < -1e9f) {
                v = lo;
            }
            q[i] = (byte) (v < lo ? lo : (v > hi ? hi : v));
        }
        return q;
    }

    /**
     * The whole pipeline into a buffer the interpreter reads: float32 values (buffer's byte order) or
     * one byte per element. The buffer's position advances by {@link ModelConstants#inputBytes()}.
     */
    public void fill(int[] argb, int w, int h, ByteBuffer dst) {
        float[] x = normalize(resizeAndCrop(argb, w, h));
        if (c.inputType.quantized()) {
            dst.put(quantize(x));
        } else {
            for (float v : x) {
                dst.putFloat(v);
            }
        }
    }
}
