package dev.shufflenetedge.core;

import java.util.ArrayList;
import java.util.List;

/** Output tensor to labels: dequantize, softmax, top-k. Plain Java, no Android imports. */
public final class Postprocess {
    private Postprocess() {}

    /** One class of the top-k: index into the labels, probability, and the raw logit. */
    public static final class Prediction {
        public final int index;
        public final float probability;
        public final float logit;

        public Prediction(int index, float probability, float logit) {
            this.index = index;
            this.probability = probability;
            this.logit = logit;
        }
    }

    /** (q - zero_point) * scale in float32, as the runner's numpy code does. Signed for int8, unsigned for uint8. */
    public static float[] dequantize(byte[] raw, boolean signed, float scale, int zeroPoint) {
        float[] out = new float[raw.length];
        for (int i = 0; i < raw.length; i++) {
            int q = signed ? raw[i] : raw[i] & 0xFF;
            out[i] = ((float) (q - zeroPoint)) * scale;
        }
        return out;
    }

    /** Numerically stable softmax (max subtracted, sums in double). */
    public static float[] softmax(float[] logits) {
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) {
            if (v > max) {
                max = v;
            }
        }
        double[] e = new double[logits.length];
        double sum = 0.0;
        for (int i = 0; i < logits.length; i++) {
            e[i] = Math.exp((double) logits[i] - max);
            sum += e[i];
        }
        float[] p = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            p[i] = (float) (e[i] / sum);
        }
        return p;
    }

    /**
     * Indices of the k largest scores, largest first; equal scores keep the lower index first (the order
     * of a stable sort on -score, which is what the Python golden vectors use). NaN ranks last.
     */
    public static int[] topK(float[] scores, int k) {
        int n = Math.min(k, scores.length);
        int[] best = new int[n];
        int filled = 0;
        for (int i = 0; i < scores.length; i++) {
            // Insertion into a sorted list of n: O(len * k), with k = 5 this beats sorting 1000 entries.
            int pos = filled;
            while (pos > 0 && greater(scores, i, best[pos - 1])) {
                pos--;
            }
            if (pos >= n) {
                continue;
            }
            int last = Math.min(filled, n - 1);
            for (int j = last; j > pos; j--) {
                best[j] = best[j - 1];
            }
            best[pos] = i;
            if (filled < n) {
                filled++;
            }
        }
        return best;
    }

    /** Whether a ranks strictly before b: larger score, or equal score and lower index (a > b here never ties). */
    private static boolean greater(float[] s, int a, int b) {
        float x = s[a];
        float y = s[b];
        if (Float.isNaN(x)) {
            return false;
        }
        if (Float.isNaN(y)) {
            return true;
        }
        return x > y || (x == y && a < b);
    }

    /** Softmax then top-k, with the logits kept for display. */
    public static List<Prediction> classify(float[] logits, int k) {
        float[] p = softmax(logits);
        int[] idx = topK(logits, k);
        List<Prediction> out = new ArrayList<Prediction>(idx.length);
        for (int i : idx) {
            out.add(new Prediction(i, p[i], logits[i]));
        }
        return out;
    }
}
