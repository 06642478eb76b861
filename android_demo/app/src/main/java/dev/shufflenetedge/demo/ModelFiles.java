package dev.shufflenetedge.demo;

import android.content.Context;
import android.content.res.AssetFileDescriptor;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.List;

import dev.shufflenetedge.core.Labels;
import dev.shufflenetedge.core.ModelConstants;

/** What `shufflenet-edge android-assets` put into the assets: the model, its labels and its constants. */
final class ModelFiles {
    static final String CONFIG_ASSET = "model_config.json";

    private ModelFiles() {}

    static ModelConstants constants(Context context) throws IOException {
        InputStream in;
        try {
            in = context.getAssets().open(CONFIG_ASSET);
        } catch (IOException e) {
            throw new IOException("no " + CONFIG_ASSET + " in the app's assets: run "
                    + "`shufflenet-edge android-assets MODEL.tflite --app android_demo` and rebuild", e);
        }
        try {
            return ModelConstants.read(in);
        } finally {
            in.close();
        }
    }

    static List<String> labels(Context context, ModelConstants c) throws IOException {
        InputStream in = context.getAssets().open(c.labelsFile);
        try {
            return Labels.parse(ModelConstants.readUtf8(in), c.numClasses);
        } finally {
            in.close();
        }
    }

    /** Memory-maps the model from the APK (stored uncompressed: noCompress "tflite" in app/build.gradle.kts). */
    static ByteBuffer mapAsset(Context context, String name) throws IOException {
        AssetFileDescriptor fd = context.getAssets().openFd(name);
        try {
            FileInputStream in = new FileInputStream(fd.getFileDescriptor());
            try {
                FileChannel ch = in.getChannel();
                return ch.map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
            } finally {
                in.close();
            }
        } finally {
            fd.close();
        }
    }

    /** Memory-maps a model file on the device (e.g. one the adb target pushed to /data/local/tmp). */
    static ByteBuffer mapFile(File f) throws IOException {
        RandomAccessFile raf = new RandomAccessFile(f, "r");
        try {
            return raf.getChannel().map(FileChannel.MapMode.READ_ONLY, 0, raf.length());
        } finally {
            raf.close();
        }
    }

    static long assetLength(Context context, String name) {
        try {
            AssetFileDescriptor fd = context.getAssets().openFd(name);
            try {
                return fd.getLength();
            } finally {
                fd.close();
            }
        } catch (IOException e) {
            return -1;
        }
    }
}
