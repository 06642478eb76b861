// shufflenet-edge Android demo: open this folder in Android Studio.
// Modules: :core (plain Java pre/post-processing, unit-tested on the JVM) and :app (CameraX + LiteRT).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "shufflenet-edge-demo"
include(":core", ":app")
