plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "dev.shufflenetedge.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.shufflenetedge.demo"
        // 24 (Android 7.0): at or above every dependency's own minimum (LiteRT 1.4.2: 21, CameraX and AndroidX
        // activity: 23 or lower), and the level android_demo/README.md checks each Android API against.
        minSdk = 24
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        buildConfigField("String", "LITERT_VERSION", "\"${libs.versions.litert.get()}\"")
    }

    buildFeatures {
        buildConfig = true
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // The model is memory-mapped from the APK: it must be stored uncompressed.
        noCompress += "tflite"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)
    implementation(libs.camera.camera2)
    implementation(libs.camera.lifecycle)
    implementation(libs.camera.view)
    implementation(libs.androidx.activity)
}
