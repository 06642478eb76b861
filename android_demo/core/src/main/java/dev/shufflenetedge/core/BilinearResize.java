package dev.shufflenetedge.core;

/**
 * Pillow's {@code Image.resize(size, Image.BILINEAR)} for 8-bit RGB, reproduced bit for bit.
 *
 * <p>Why not a textbook bilinear: our Python preprocessing ({@code shufflenet_edge.data.Preprocess}) resizes
 * with Pillow, and Pillow's bilinear is a separable convolution with a triangle filter whose support
 * grows with the downscale factor (an antialiasing filter), evaluated in 22-bit fixed point. Any other
 * bilinear differs from it by several grey levels when shrinking a camera frame. This class follows
 * Pillow's {@code libImaging/Resample.c} ({@code precompute_coeffs}, {@code normalize_coeffs_8bpc},
 * the horizontal pass then the vertical pass, rounding and clipping) so that the app's uint8 pixels are
 * identical to the ones the model was calibrated and checked on. Java's double arithmetic is IEEE-754
 * and never fused, so the coefficients are the same on every device.
 *
 * <p>Pixels are RGB bytes, interleaved, row-major (HWC); byte values are read as unsigned.
 */
public final class BilinearResize {
    /** 32 bits minus 8 for the result minus 2 for overflow, as in Pillow. */
    static final int PRECISION_BITS = 32 - 8 - 2;

    private BilinearResize() {}

    /** Coefficients of one pass: for output index i, taps {@code k[i*ksize .. +count]} start at {@code first[i]}. */
    static final class Coeffs {
        final int ksize;
        final int[] first;
        final int[] count;
        final int[] k;

        Coeffs(int ksize, int[] first, int[] count, int[] k) {
            this.ksize = ksize;
            this.first = first;
            this.count = count;
            this.k = k;
        }
    }

    /** Pillow's precompute_coeffs for the bilinear filter (support 1.0), then normalize_coeffs_8bpc. */
    static Coeffs coefficients(int inSize, int outSize) {
        double scale = (double) inSize / outSize;
        double filterscale = scale < 1.0 ? 1.0 : scale;
        double support = 1.0 * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] first = new int[outSize];
        int[] count = new int[outSize];
        int[] kk = new int[outSize * ksize];
        double[] w = new double[ksize];
        for (int xx = 0; xx < outSize; xx++) {
            double center = 0.0 + (xx + 0.5) * scale;
            double ww = 0.0;
            double ss = 1.0 / filterscale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) {
                xmin = 0;
            }
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) {
                xmax = inSize;
            }
            xmax -= xmin;
            for (int x = 0; x < xmax; x++) {
                double v = triangle((x + xmin - center + 0.5) * ss);
                w[x] = v;
                ww += v;
            }
            for (int x = 0; x < xmax; x++) {
                double v = ww != 0.0 ? w[x] / ww : w[x];
                kk[xx * ksize + x] = v < 0
                        ? (int) (-0.5 + v * (1 << PRECISION_BITS))
                        : (int) (0.5 + v * (1 << PRECISION_BITS));
            }
            first[xx] = xmin;
            count[xx] = xmax;
        }
        return new Coeffs(ksize, first, count, kk);
    }

    private static double triangle(double x) {
        if (x < 0.0) {
            x = -x;
        }
        return x < 1.0 ? 1.0 - x : 0.0;
    }

    private static int clip8(int acc) {
        int v = acc >> PRECISION_BITS;
        return v < 0 ? 0 : (v > 255 ? 255 : v);
    }

    /**
     * Resizes an RGB image ({@code inW * inH * 3} bytes) to {@code outW x outH}.
     * Returns a new array; when the size does not change, a copy (as Pillow does).
     */
    public static byte[] resize(byte[] rgb, int inW, int inH, int outW, int outH) {
        if (inW <= 0 || inH <= 0 || outW <= 0 || outH <= 0) {
            throw new IllegalArgumentException("sizes must be positive: " + inW + "x" + inH + " -> " + outW + "x" + outH);
        }
        if (rgb.length != inW * inH * 3) {
            throw new IllegalArgumentException("expected " + (inW * inH * 3) + " RGB bytes for " + inW + "x" + inH + ", got " + rgb.length);
        }
        boolean needH = outW != inW;
        boolean needV = outH != inH;
        Coeffs vert = coefficients(inH, outH);
        // Rows of the source that the vertical pass reads (Pillow runs the horizontal pass on those only).
        int rowFirst = vert.first[0];
        int rowLast = vert.first[outH - 1] + vert.count[outH - 1];
        byte[] cur = rgb;
        int curW = inW;
        int curH = inH;
        int rowOffset = 0;
        if (needH) {
            Coeffs hor = coefficients(inW, outW);
            int rows = rowLast - rowFirst;
            byte[] tmp = new byte[outW * rows * 3];
            int half = 1 << (PRECISION_BITS - 1);
            for (int yy = 0; yy < rows; yy++) {
                int inRow = (yy + rowFirst) * inW * 3;
                int outRow = yy * outW * 3;
                for (int xx = 0; xx < outW; xx++) {
                    int xmin = hor.first[xx];
                    int n = hor.count[xx];
                    int kb = xx * hor.ksize;
                    int s0 = half;
                    int s1 = half;
                    int s2 = half;
                    for (int x = 0; x < n; x++) {
                        int p = inRow + (x + xmin) * 3;
                        int c = hor.k[kb + x];
                        s0 += (rgb[p] & 0xFF) * c;
                        s1 += (rgb[p + 1] & 0xFF) * c;
                        s2 += (rgb[p + 2] & 0xFF) * c;
                    }
                    int o = outRow + xx * 3;
                    tmp[o] = (byte) clip8(s0);
                    tmp[o + 1] = (byte) clip8(s1);
                    tmp[o + 2] = (byte) clip8(s2);
                }
            }
            cur = tmp;
            curW = outW;
            curH = rows;
            rowOffset = rowFirst;
        }
        if (needV) {
            byte[] out = new byte[curW * outH * 3];
            int half = 1 << (PRECISION_BITS - 1);
            for (int yy = 0; yy < outH; yy++) {
                int ymin = vert.first[yy] - rowOffset;
                int n = vert.count[yy];
                int kb = yy * vert.ksize;
                int outRow = yy * curW * 3;
                for (int xx = 0; xx < curW; xx++) {
                    int s0 = half;
                    int s1 = half;
                    int s2 = half;
                    for (int y = 0; y < n; y++) {
                        int p = ((y + ymin) * curW + xx) * 3;
                        int c = vert.k[kb + y];
                        s0 += (cur[p] & 0xFF) * c;
                        s1 += (cur[p + 1] & 0xFF) * c;
                        s2 += (cur[p + 2] & 0xFF) * c;
                    }
                    int o = outRow + xx * 3;
                    out[o] = (byte) clip8(s0);
                    out[o + 1] = (byte) clip8(s1);
                    out[o + 2] = (byte) clip8(s2);
                }
            }
            return out;
        }
        if (cur == rgb) {
            return rgb.clone();
        }
        // Horizontal pass only: it ran on rows [rowFirst, rowLast), which is every row when the height is unchanged.
        if (curH != outH) {
            throw new IllegalStateException("internal: horizontal-only pass produced " + curH + " rows, expected " + outH);
        }
        return cur;
    }
}
