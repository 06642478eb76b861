"""The ShuffleNet V2 paper's guideline experiments (G1-G4, Tables 1-4) and the speed-vs-FLOPs view of our
model zoo, rebuilt and measured on the user's runtime: `shufflenet-edge guidelines`.

- networks.py: the paper's tables (setups and numbers) and the networks of each row, FLOPs held equal;
- run.py: export through our ONNX / TFLite paths (cached), interleaved timing, the whole run;
- report.py: normalized tables beside the paper's, verdicts, JSON, Markdown and PNG.
"""
