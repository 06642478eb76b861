"""The export pipeline (installed as `shufflenet_edge.export`): config, stages, the ONNX and TFLite backends,
graph passes (export/passes/, one per file) and the artifact record. The Python API's entry point is the function
`shufflenet_edge.export`, which calls `shufflenet_edge.api.export`."""
