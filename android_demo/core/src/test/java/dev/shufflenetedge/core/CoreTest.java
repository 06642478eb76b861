package dev.shufflenetedge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import java.util.Map;

import org.junit.Test;

/** Unit tests of the core's pieces that need no golden files. */
public class CoreTest {
    private static final String CONFIG = "{\"schema\": \"shufflenet-edge/android-assets/1\", \"num_classes\": 10,"
            + " \"preprocess\": {\"input_size\": 4, \"resize_size\": 5, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25]},"
            + " \"input\": {\"layout\": \"nhwc\", \"dtype\": \"int8\", \"scale\": 0.5, \"zero_point\": -3},"
            + " \"output\": {\"dtype\": \"float32\", \"scale\": null, \"zero_point\": null}}";

    @Test
    public void parsesTheAssetsConfig() {
        ModelConstants c = ModelConstants.parse(CONFIG);
        assertEquals(4, c.inputSize);
        assertEquals(5, c.resizeSize);
        assertEquals(ModelConstants.DType.INT8, c.inputType);
        assertEquals(0.5f, c.inputScale, 0f);
        assertEquals(-3, c.inputZeroPoint);
        assertEquals(ModelConstants.DType.FLOAT32, c.outputType);
        assertEquals(48, c.inputBytes());
    }

    @Test
    public void rejectsAnotherSchemaAndMissingScale() {
        try {
            ModelConstants.parse(CONFIG.replace("android-assets/1", "android-assets/9"));
            fail("accepted a foreign schema");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("schema"));
        }
        try {
            ModelConstants.parse(CONFIG.replace("\"scale\": 0.5", "\"scale\": 0"));
            fail("accepted an int8 input without a scale");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("scale"));
        }
    }

    @Test
    public void miniJsonHandlesEscapesNumbersAndNesting() {
        Object o = MiniJson.parse("{\"a\": [1, -2.5e3, true, null, \"x\\\"y\\u00e9\"], \"b\": {}}");
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) o;
        @SuppressWarnings("unchecked")
        List<Object> a = (List<Object>) m.get("a");
        assertEquals(1.0, (Double) a.get(0), 0);
        assertEquals(-2500.0, (Double) a.get(1), 0);
        assertEquals(Boolean.TRUE, a.get(2));
        assertEquals(null, a.get(3));
        assertEquals("x\"y\u00e9", a.get(4));
        try {
            MiniJson.parse("{\"a\": 1,}");
            fail("accepted a trailing comma");
        } catch (IllegalArgumentException expected) {
            // expected
        }
    }

    @Test
    public void roundsLikePython() {
        // Python: int(round(x)) rounds half to even.
        assertEquals(144, Preprocessor.cropOffset(511, 224)); // 143.5 -> 144
        assertEquals(20, Preprocessor.cropOffset(73, 32)); // 20.5 -> 20
        assertArrayEquals(new int[] {256, 341}, Preprocessor.resizedSize(240, 320, 256));
        assertArrayEquals(new int[] {511, 256}, Preprocessor.resizedSize(513, 257, 256));
        assertArrayEquals(new int[] {256, 256}, Preprocessor.resizedSize(300, 300, 256));
    }

    @Test
    public void resizeToSameSizeIsACopyAndUpDownKeepConstants() {
        byte[] img = new byte[7 * 5 * 3];
        for (int i = 0; i < img.length; i++) {
            img[i] = (byte) (i * 37);
        }
        assertArrayEquals(img, BilinearResize.resize(img, 7, 5, 7, 5));
        byte[] flat = new byte[9 * 4 * 3];
        java.util.Arrays.fill(flat, (byte) 200);
        for (byte b : BilinearResize.resize(flat, 9, 4, 3, 11)) {
            assertEquals(200, b & 0xFF);
        }
    }

    @Test
    public void rotatesCameraFramesExactly() {
        // 3x2 image:  a b c / d e f
        int[] img = {1, 2, 3, 4, 5, 6};
        int[] size = new int[2];
        assertArrayEquals(new int[] {4, 1, 5, 2, 6, 3}, Preprocessor.rotate(img, 3, 2, 90, size));
        assertArrayEquals(new int[] {2, 3}, size);
        assertArrayEquals(new int[] {6, 5, 4, 3, 2, 1}, Preprocessor.rotate(img, 3, 2, 180, size));
        assertArrayEquals(new int[] {3, 2}, size);
        assertArrayEquals(new int[] {3, 6, 2, 5, 1, 4}, Preprocessor.rotate(img, 3, 2, 270, size));
        assertArrayEquals(img, Preprocessor.rotate(img, 3, 2, 0, size));
    }

    @Test
    public void quantizeClipsAndRoundsHalfToEven() {
        ModelConstants c = ModelConstants.parse(CONFIG);
        Preprocessor p = new Preprocessor(c);
        byte[] q = p.quantize(new float[] {0.25f, 0.75f, 1000f, -1000f, -0.25f});
        // 0.25/0.5 = 0.5 -> 0; 0.75/0.5 = 1.5 -> 2; then + zero point -3; clipped to [-128, 127]
        assertArrayEquals(new byte[] {-3, -1, 127, -128, -3}, q);
    }

    @Test
    public void topKOrdersTiesByIndex() {
        float[] s = {1f, 5f, 3f, 5f, Float.NaN, 2f, 5f};
        assertArrayEquals(new int[] {1, 3, 6, 2, 5}, Postprocess.topK(s, 5));
        assertArrayEquals(new int[] {1, 3}, Postprocess.topK(s, 2));
        assertEquals(7, Postprocess.topK(s, 10).length);
    }

    @Test
    public void softmaxSumsToOne() {
        float[] p = Postprocess.softmax(new float[] {1000f, 1000f, -1000f});
        assertEquals(0.5f, p[0], 1e-7f);
        assertEquals(0.5f, p[1], 1e-7f);
        assertEquals(0f, p[2], 1e-7f);
    }

    @Test
    public void percentilesMatchNumpy() {
        // np.percentile([1, 2, 3, 4, 10], [50, 90, 99]) == [3, 7.6, 9.76]; np.std == 3.1622776601683795
        LatencyStats s = LatencyStats.of(new double[] {10, 2, 3, 1, 4});
        assertEquals(3.0, s.median, 1e-12);
        assertEquals(7.6, s.p90, 1e-12);
        assertEquals(9.76, s.p99, 1e-12);
        assertEquals(4.0, s.mean, 1e-12);
        assertEquals(3.1622776601683795, s.std, 1e-12);
        assertEquals(1.0, s.min, 0);
        assertEquals(10.0, s.max, 0);
    }

    @Test
    public void benchmarkReportIsValidJsonWithTheKeysTheAdbTargetReads() {
        BenchmarkReport r = new BenchmarkReport();
        r.runId = "abc\"1";
        r.model = "/data/local/tmp/x y/model.tflite";
        r.inferenceMs = new double[] {2.0, 3.0, 4.0};
        r.preprocessMs = new double[] {0.5, 0.5, 0.5};
        r.postprocessMs = new double[] {0.1, 0.1, 0.1};
        r.initMs = 12.5;
        r.firstInferenceMs = 9.0;
        r.warmup = 2;
        r.threads = 4;
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) MiniJson.parse(r.toJson());
        assertEquals("ok", m.get("status"));
        assertEquals("abc\"1", m.get("run_id"));
        assertEquals(3.0, (Double) ((Map<?, ?>) m.get("latency_ms")).get("median"), 1e-9);
        assertEquals(3.0, (Double) m.get("runs"), 0);
        assertEquals(null, m.get("peak_rss_mb"));
        String out = System.getProperty("bench.json.out");
        if (out != null && !out.isEmpty()) { // pytest parses this with the adb target's reader
            try {
                java.io.FileOutputStream f = new java.io.FileOutputStream(out);
                try {
                    f.write(r.toJson().getBytes("UTF-8"));
                } finally {
                    f.close();
                }
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
        }
        String line = r.summaryLine("/data/user/0/x/files/bench.json");
        assertTrue(line, line.startsWith("run_id=abc\"1 status=ok") && line.contains("median_ms=3.000"));
        r.error = "model not found";
        @SuppressWarnings("unchecked")
        Map<String, Object> e = (Map<String, Object>) MiniJson.parse(r.toJson());
        assertEquals("error", e.get("status"));
        assertEquals("model not found", e.get("reason"));
    }

    @Test
    public void labelsMustMatchTheClassCount() {
        assertEquals(3, Labels.parse("a\nb\r\nc\n\n", 3).size());
        try {
            Labels.parse("a\nb\n", 3);
            fail("accepted 2 labels for 3 classes");
        } catch (IllegalArgumentException expected) {
            // expected
        }
    }
}
