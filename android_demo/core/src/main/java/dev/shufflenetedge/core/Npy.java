package dev.shufflenetedge.core;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Tensors in NumPy's {@code .npy} format (versions 1.0-3.0), the exchange format of the parity entry point:
 * the host writes the inputs with {@code numpy.save}, the app writes the outputs, the host reads them with
 * {@code numpy.load}. Little-endian float32, int8, uint8 and int32, C order only (what the host writes).
 * Plain Java: no Android API, so the JVM tests exercise exactly the code the app runs.
 */
public final class Npy {
    /** The element types a model tensor can have here, with NumPy's descr strings. */
    public enum DType {
        FLOAT32("<f4", 4), INT8("|i1", 1), UINT8("|u1", 1), INT32("<i4", 4);

        public final String descr;
        public final int size;

        DType(String descr, int size) {
            this.descr = descr;
            this.size = size;
        }

        static DType fromDescr(String d) {
            // '=' is native order: little-endian on every Android ABI; one-byte types carry '|' (or '<', '>').
            String n = d.length() > 1 && d.charAt(0) == '=' ? "<" + d.substring(1) : d;
            for (DType t : values()) {
                if (t.descr.equals(n) || t.size == 1 && n.length() > 1 && t.descr.substring(1).equals(n.substring(1))) {
                    return t;
                }
            }
            throw new IllegalArgumentException("unsupported .npy dtype " + d + " (float32, int8, uint8, int32 little-endian)");
        }
    }

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final Charset LATIN1 = Charset.forName("ISO-8859-1");

    /** Element type, shape, and the raw little-endian data (position 0, limit = element count x size). */
    public final DType dtype;
    public final int[] shape;
    public final ByteBuffer data;

    public Npy(DType dtype, int[] shape, ByteBuffer data) {
        long n = count(shape);
        if (data.remaining() != n * dtype.size) {
            throw new IllegalArgumentException("data holds " + data.remaining() + " bytes, shape " + Arrays.toString(shape)
                    + " of " + dtype + " needs " + n * dtype.size);
        }
        this.dtype = dtype;
        this.shape = shape.clone();
        this.data = data.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    public static long count(int[] shape) {
        long n = 1;
        for (int s : shape) {
            if (s < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            n *= s;
        }
        return n;
    }

    /** Number of elements. */
    public long size() {
        return count(shape);
    }

    /** The bytes of item {@code i} along the first axis (one sample of a batch), as a read-only view. */
    public ByteBuffer item(int i) {
        if (shape.length == 0 || i < 0 || i >= shape[0]) {
            throw new IndexOutOfBoundsException("item " + i + " of shape " + Arrays.toString(shape));
        }
        int per = (int) (size() / shape[0]) * dtype.size;
        ByteBuffer b = data.duplicate();
        b.position(i * per);
        b.limit((i + 1) * per);
        return b.slice().order(ByteOrder.LITTLE_ENDIAN).asReadOnlyBuffer();
    }

    public float[] toFloatArray() {
        if (dtype != DType.FLOAT32) {
            throw new IllegalStateException("not float32 but " + dtype);
        }
        float[] out = new float[(int) size()];
        data.duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    public static Npy read(File f) throws IOException {
        try (InputStream in = new FileInputStream(f)) {
            return read(in);
        }
    }

    public static Npy read(InputStream stream) throws IOException {
        DataInputStream in = new DataInputStream(stream);
        byte[] magic = new byte[6];
        in.readFully(magic);
        if (!Arrays.equals(magic, MAGIC)) {
            throw new IOException("not a .npy file (bad magic)");
        }
        int major = in.readUnsignedByte();
        in.readUnsignedByte(); // minor
        long headerLen;
        if (major == 1) {
            headerLen = in.readUnsignedByte() | (in.readUnsignedByte() << 8);
        } else if (major == 2 || major == 3) {
            headerLen = (in.readUnsignedByte() | (in.readUnsignedByte() << 8) | (in.readUnsignedByte() << 16))
                    | ((long) in.readUnsignedByte() << 24);
        } else {
            throw new IOException("unsupported .npy version " + major);
        }
        if (headerLen > 1 << 20) {
            throw new IOException(".npy header too long: " + headerLen);
        }
        byte[] hb = new byte[(int) headerLen];
        in.readFully(hb);
        String header = new String(hb, major == 3 ? Charset.forName("UTF-8") : LATIN1);
        DType dtype = DType.fromDescr(field(header, "descr").replace("'", "").trim());
        String fortran = field(header, "fortran_order").trim();
        if (!fortran.startsWith("False")) {
            throw new IOException(".npy in Fortran order is not supported (save a C-contiguous array)");
        }
        int[] shape = parseShape(field(header, "shape"));
        long n = count(shape) * dtype.size;
        if (n > Integer.MAX_VALUE) {
            throw new IOException(".npy too large: " + n + " bytes");
        }
        byte[] body = new byte[(int) n];
        in.readFully(body);
        return new Npy(dtype, shape, ByteBuffer.wrap(body));
    }

    /** The value text of {@code 'key': value} in the header dict (up to the next top-level comma). */
    private static String field(String header, String key) throws IOException {
        int k = header.indexOf("'" + key + "'");
        if (k < 0) {
            throw new IOException(".npy header has no '" + key + "': " + header.trim());
        }
        int c = header.indexOf(':', k);
        int depth = 0;
        StringBuilder sb = new StringBuilder();
        for (int i = c + 1; i < header.length(); i++) {
            char ch = header.charAt(i);
            if (ch == '(') {
                depth++;
            } else if (ch == ')') {
                depth--;
            } else if ((ch == ',' || ch == '}') && depth == 0) {
                break;
            }
            sb.append(ch);
        }
        return sb.toString();
    }

    private static int[] parseShape(String s) throws IOException {
        String t = s.trim();
        if (!t.startsWith("(") || !t.endsWith(")")) {
            throw new IOException("bad .npy shape " + s);
        }
        List<Integer> dims = new ArrayList<Integer>();
        for (String part : t.substring(1, t.length() - 1).split(",")) {
            String p = part.trim();
            if (!p.isEmpty()) {
                dims.add(Integer.parseInt(p.endsWith("L") ? p.substring(0, p.length() - 1) : p));
            }
        }
        int[] out = new int[dims.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = dims.get(i);
        }
        return out;
    }

    /** Version 1.0 header padded so the data starts on a 64-byte boundary, as NumPy writes it. */
    public byte[] toBytes() {
        StringBuilder sh = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            sh.append(shape[i]).append(shape.length == 1 ? "," : (i + 1 < shape.length ? ", " : ""));
        }
        sh.append(")");
        String dict = String.format(Locale.ROOT, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", dtype.descr, sh);
        int pre = MAGIC.length + 2 + 2;
        int total = pre + dict.length() + 1;
        int pad = (64 - total % 64) % 64;
        StringBuilder h = new StringBuilder(dict);
        for (int i = 0; i < pad; i++) {
            h.append(' ');
        }
        h.append('\n');
        byte[] hb = h.toString().getBytes(LATIN1);
        ByteArrayOutputStream out = new ByteArrayOutputStream(pre + hb.length + data.remaining());
        out.write(MAGIC, 0, MAGIC.length);
        out.write(1);
        out.write(0);
        out.write(hb.length & 0xFF);
        out.write((hb.length >> 8) & 0xFF);
        out.write(hb, 0, hb.length);
        byte[] body = new byte[data.remaining()];
        data.duplicate().get(body);
        out.write(body, 0, body.length);
        return out.toByteArray();
    }

    /** Written to a temporary file beside {@code f}, then renamed: a reader never sees half a file. */
    public void write(File f) throws IOException {
        File tmp = new File(f.getPath() + ".partial");
        try (OutputStream out = new FileOutputStream(tmp)) {
            out.write(toBytes());
        }
        if (!tmp.renameTo(f)) {
            if (!tmp.delete()) {
                tmp.deleteOnExit();
            }
            throw new IOException("cannot rename " + tmp + " to " + f);
        }
    }

    /** Stack equally shaped items (one per sample) into one array with a leading batch axis. */
    public static Npy stack(DType dtype, int[] itemShape, List<ByteBuffer> items) {
        int per = (int) count(itemShape) * dtype.size;
        ByteBuffer all = ByteBuffer.allocate(per * items.size()).order(ByteOrder.LITTLE_ENDIAN);
        for (ByteBuffer b : items) {
            ByteBuffer d = b.duplicate();
            d.rewind();
            if (d.remaining() != per) {
                throw new IllegalArgumentException("item of " + d.remaining() + " bytes, expected " + per);
            }
            all.put(d);
        }
        all.flip();
        int[] shape = new int[itemShape.length + 1];
        shape[0] = items.size();
        System.arraycopy(itemShape, 0, shape, 1, itemShape.length);
        return new Npy(dtype, shape, all);
    }
}
