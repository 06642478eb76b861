package dev.shufflenetedge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

import org.junit.Assume;
import org.junit.Test;

/**
 * The parity entry point's tensor I/O. With {@code -Dnpy.in.dir} and {@code -Dnpy.out.dir} (tests/test_android.py),
 * every {@code .npy} that numpy wrote is read here and written back, plus each file's samples stacked in reverse
 * order; the Python test then loads what Java wrote and compares with the originals.
 */
public class NpyTest {
    @Test
    public void roundTripsInMemory() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(6);
        b.put(new byte[] {1, -2, 3, -4, 5, -6});
        b.flip();
        Npy a = new Npy(Npy.DType.INT8, new int[] {3, 2}, b);
        Npy back = Npy.read(new ByteArrayInputStream(a.toBytes()));
        assertEquals(Npy.DType.INT8, back.dtype);
        assertArrayEquals(new int[] {3, 2}, back.shape);
        assertEquals(0, (a.toBytes().length - 6) % 64);
        assertEquals(-4, back.item(1).get(1));
    }

    @Test
    public void refusesWhatItCannotRead() {
        try {
            Npy.read(new ByteArrayInputStream("PK\u0003\u0004 not npy".getBytes()));
            fail("read a non-npy file");
        } catch (IOException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("magic"));
        }
        try {
            new Npy(Npy.DType.FLOAT32, new int[] {2, 2}, ByteBuffer.allocate(12));
            fail("accepted a short buffer");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("needs 16"));
        }
    }

    @Test
    public void readsAndWritesWhatNumpyWrote() throws IOException {
        String in = System.getProperty("npy.in.dir");
        String out = System.getProperty("npy.out.dir");
        Assume.assumeTrue("run by tests/test_android.py with -Dnpy.in.dir/-Dnpy.out.dir", in != null && out != null);
        File[] files = new File(in).listFiles();
        assertTrue("no .npy files in " + in, files != null && files.length > 0);
        int n = 0;
        for (File f : files) {
            if (!f.getName().endsWith(".npy")) {
                continue;
            }
            Npy a = Npy.read(f);
            a.write(new File(out, f.getName()));
            if (a.shape.length > 0 && a.shape[0] > 0) {
                List<ByteBuffer> items = new ArrayList<ByteBuffer>();
                for (int i = a.shape[0] - 1; i >= 0; i--) {
                    items.add(a.item(i));
                }
                int[] itemShape = new int[a.shape.length - 1];
                System.arraycopy(a.shape, 1, itemShape, 0, itemShape.length);
                Npy.stack(a.dtype, itemShape, items).write(new File(out, f.getName().replace(".npy", ".reversed.npy")));
            }
            n++;
        }
        assertTrue(n > 0);
    }
}
