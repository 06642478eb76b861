package dev.shufflenetedge.demo;

import android.Manifest;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.os.Bundle;
import android.util.Log;
import android.widget.Button;
import android.widget.CompoundButton;
import android.widget.Switch;
import android.widget.TextView;

import androidx.activity.ComponentActivity;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.contract.ActivityResultContracts;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.core.Preview;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;

import com.google.common.util.concurrent.ListenableFuture;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import dev.shufflenetedge.core.ModelConstants;
import dev.shufflenetedge.core.Postprocess;
import dev.shufflenetedge.core.Preprocessor;

/**
 * Camera preview with live classification: top-5 labels and per-frame latency (preprocess / inference /
 * postprocess) on screen; CPU (XNNPACK) by default, a switch for the GPU delegate, a button for threads.
 */
public class MainActivity extends ComponentActivity {
    private static final String TAG = "ShuffleNetEdge";
    private static final int[] THREAD_CHOICES = {1, 2, 4, 8};
    private static final int TOP_K = 5;

    private PreviewView previewView;
    private TextView resultText;
    private TextView latencyText;
    private Switch gpuSwitch;
    private Button threadsButton;

    private final ExecutorService analysisExecutor = Executors.newSingleThreadExecutor();
    private ModelConstants constants;
    private List<String> labels;
    private ByteBuffer model;
    private int threadIndex = 2;
    /** Replaced on the analysis thread when the settings change; used only there. */
    private Classifier classifier;
    private volatile boolean settingsChanged = true;
    private double emaInference = -1;

    private final ActivityResultLauncher<String> cameraPermission =
            registerForActivityResult(new ActivityResultContracts.RequestPermission(), granted -> {
                if (granted) {
                    startCamera();
                } else {
                    resultText.setText(R.string.camera_denied);
                }
            });

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        previewView = findViewById(R.id.preview);
        resultText = findViewById(R.id.results);
        latencyText = findViewById(R.id.latency);
        gpuSwitch = findViewById(R.id.gpu_switch);
        threadsButton = findViewById(R.id.threads_button);
        try {
            constants = ModelFiles.constants(this);
            labels = ModelFiles.labels(this, constants);
            model = ModelFiles.mapAsset(this, constants.modelFile);
        } catch (Exception e) {
            Log.e(TAG, "cannot load the model assets", e);
            resultText.setText(e.getMessage());
            return;
        }
        updateThreadsLabel();
        gpuSwitch.setOnCheckedChangeListener((CompoundButton b, boolean checked) -> {
            threadsButton.setEnabled(!checked);
            settingsChanged = true;
        });
        threadsButton.setOnClickListener(v -> {
            threadIndex = (threadIndex + 1) % THREAD_CHOICES.length;
            updateThreadsLabel();
            settingsChanged = true;
        });
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA);
        }
    }

    private void updateThreadsLabel() {
        threadsButton.setText(getString(R.string.threads_label, THREAD_CHOICES[threadIndex]));
    }

    private void startCamera() {
        final ListenableFuture<ProcessCameraProvider> future = ProcessCameraProvider.getInstance(this);
        future.addListener(() -> {
            ProcessCameraProvider provider;
            try {
                provider = future.get();
            } catch (Exception e) {
                resultText.setText(getString(R.string.camera_failed, String.valueOf(e.getMessage())));
                return;
            }
            Preview preview = new Preview.Builder().build();
            preview.setSurfaceProvider(previewView.getSurfaceProvider());
            ImageAnalysis analysis = new ImageAnalysis.Builder()
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .build();
            analysis.setAnalyzer(analysisExecutor, this::analyze);
            provider.unbindAll();
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis);
        }, ContextCompat.getMainExecutor(this));
    }

    /** On the analysis thread: frame -> upright ARGB -> classifier; results posted to the UI thread. */
    private void analyze(ImageProxy image) {
        try {
            if (settingsChanged || classifier == null) {
                settingsChanged = false;
                if (classifier != null) {
                    classifier.close();
                    classifier = null;
                }
                boolean gpu = gpuSwitch.isChecked();
                int threads = THREAD_CHOICES[threadIndex];
                try {
                    classifier = new Classifier(model, constants, gpu, threads);
                    emaInference = -1;
                } catch (RuntimeException e) {
                    Log.e(TAG, "cannot create the interpreter", e);
                    final String msg = e.getMessage();
                    runOnUiThread(() -> {
                        resultText.setText(msg);
                        if (gpuSwitch.isChecked()) {
                            gpuSwitch.setChecked(false); // fall back to the CPU and say why
                        }
                    });
                    return;
                }
            }
            Bitmap bitmap = image.toBitmap();
            int w = bitmap.getWidth();
            int h = bitmap.getHeight();
            int[] argb = new int[w * h];
            bitmap.getPixels(argb, 0, w, 0, 0, w, h);
            int[] size = new int[2];
            int[] upright = Preprocessor.rotate(argb, w, h, image.getImageInfo().getRotationDegrees(), size);
            Classifier.Result r = classifier.classify(upright, size[0], size[1], TOP_K);
            emaInference = emaInference < 0 ? r.inferenceMs : 0.9 * emaInference + 0.1 * r.inferenceMs;
            final String top = formatTop(r.top);
            final String lat = String.format(Locale.ROOT,
                    "%s, %d thread%s\npre %.1f ms | inference %.1f ms (avg %.1f) | post %.2f ms",
                    classifier.gpu ? "GPU delegate" : "CPU (XNNPACK)", classifier.threads,
                    classifier.threads == 1 ? "" : "s", r.preprocessMs, r.inferenceMs, emaInference, r.postprocessMs);
            runOnUiThread(() -> {
                resultText.setText(top);
                latencyText.setText(lat);
            });
        } finally {
            image.close();
        }
    }

    private String formatTop(List<Postprocess.Prediction> top) {
        StringBuilder b = new StringBuilder();
        for (Postprocess.Prediction p : top) {
            String name = p.index < labels.size() ? labels.get(p.index) : ("class " + p.index);
            b.append(String.format(Locale.ROOT, "%5.1f%%  %s\n", 100f * p.probability, name));
        }
        return b.toString();
    }

    @Override
    protected void onDestroy() {
        super.onDestroy();
        analysisExecutor.execute(() -> {
            if (classifier != null) {
                classifier.close();
                classifier = null;
            }
        });
        analysisExecutor.shutdown();
    }
}
