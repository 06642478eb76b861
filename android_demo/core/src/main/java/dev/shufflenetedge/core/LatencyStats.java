package dev.shufflenetedge.core;

import java.util.Arrays;
import java.util.Locale;

/**
 * Latency statistics with the definitions the rest of shufflenet-edge uses: percentiles by linear
 * interpolation between order statistics (numpy's default, {@code np.percentile(x, q)}), population
 * standard deviation ({@code np.std}, ddof 0). Warm-up runs are never passed in.
 */
public final class LatencyStats {
    public final int count;
    public final double median;
    public final double p90;
    public final double p99;
    public final double mean;
    public final double std;
    public final double min;
    public final double max;

    private LatencyStats(double[] ms) {
        if (ms.length == 0) {
            throw new IllegalArgumentException("no samples");
        }
        double[] s = ms.clone();
        Arrays.sort(s);
        count = s.length;
        median = percentile(s, 50);
        p90 = percentile(s, 90);
        p99 = percentile(s, 99);
        double sum = 0;
        for (double v : s) {
            sum += v;
        }
        mean = sum / s.length;
        double ss = 0;
        for (double v : s) {
            ss += (v - mean) * (v - mean);
        }
        std = Math.sqrt(ss / s.length);
        min = s[0];
        max = s[s.length - 1];
    }

    public static LatencyStats of(double[] ms) {
        return new LatencyStats(ms);
    }

    /** numpy's linear percentile of sorted values. */
    static double percentile(double[] sorted, double q) {
        double pos = q / 100.0 * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, sorted.length - 1);
        double frac = pos - lo;
        return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
    }

    /** {"median":..,"p90":..,"p99":..,"mean":..,"std":..,"min":..,"max":..} in milliseconds. */
    public String toJson() {
        return String.format(Locale.ROOT,
                "{\"median\": %s, \"p90\": %s, \"p99\": %s, \"mean\": %s, \"std\": %s, \"min\": %s, \"max\": %s}",
                num(median), num(p90), num(p99), num(mean), num(std), num(min), num(max));
    }

    /** A JSON number (finite) with enough digits for microseconds. */
    public static String num(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return "null";
        }
        return String.format(Locale.ROOT, "%.6f", v);
    }

    /** A JSON string literal. */
    public static String str(String v) {
        if (v == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "median %.3f ms, p90 %.3f, p99 %.3f, mean %.3f +- %.3f, min %.3f, max %.3f (n=%d)",
                median, p90, p99, mean, std, min, max, count);
    }
}
