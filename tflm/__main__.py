from tflm.cli import entry

entry()
