// Plain Java, no Android: the pre/post-processing the app runs, unit-tested on the JVM against golden
// vectors written by shufflenet-edge's Python preprocessing (src/test/resources/golden).
plugins {
    `java-library`
}

java {
    toolchain {
        languageVersion.set(JavaLanguageVersion.of(17))
    }
}

tasks.withType<JavaCompile>().configureEach {
    // Java 8 APIs only: everything the core calls exists on Android at minSdk 24 (the CI compiles the same way).
    options.release.set(8)
    options.compilerArgs.addAll(listOf("-Xlint:all", "-Xlint:-options"))
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // Optional: point at other golden vectors or at the app's generated assets.
    listOf("golden.dir", "assets.dir").forEach { key ->
        System.getProperty(key)?.let { systemProperty(key, it) }
    }
}
