"""What an export folder holds and how a user reads it: the formats, their file suffixes and runtimes, the
names of the files beside the model, and the README with its few lines of Python (the temperature and the
open-set detector applied when the card carries them). Text only: importing it loads nothing heavy."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FORMATS = ("keras", "savedmodel", "onnx", "tflite")
LABELS = {"keras": "Keras (.keras)", "savedmodel": "TensorFlow SavedModel", "onnx": "ONNX",
          "tflite": "TFLite / LiteRT"}
SUFFIXES = {"keras": ".keras", "savedmodel": "", "onnx": ".onnx", "tflite": ".tflite"}
RUNTIMES = {"keras": "Keras load_model", "savedmodel": "tf.saved_model.load (serving_default)",
            "onnx": "onnxruntime (CPU)", "tflite": "LiteRT interpreter (ai_edge_litert)"}
CARD_NAME = "model_card.json"
README_NAME = "README.md"
ARRAYS_NAME = "open_set.npz"
FEATURES_NAME = "features"

_LOAD = {
    "keras": ('import keras\n'
              '# ResNet / VGG models: `import core.models.preprocessing` (Transfer Lab) first\n'
              'model = keras.saving.load_model("{file}")\n'
              '{out} = model.predict(x)[0]'),
    "savedmodel": ('import tensorflow as tf\n'
                   'serve = tf.saved_model.load("{file}").signatures["serving_default"]\n'
                   '{out} = next(iter(serve(tf.constant(x)).values())).numpy()[0]'),
    "onnx": ('import onnxruntime\n'
             'session = onnxruntime.InferenceSession("{file}")\n'
             '{out} = session.run(None, {{session.get_inputs()[0].name: x}})[0][0]'),
    "tflite": ('from ai_edge_litert.interpreter import Interpreter\n'
               'interpreter = Interpreter(model_path="{file}")\n'
               'interpreter.allocate_tensors()\n'
               'interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)\n'
               'interpreter.invoke()\n'
               '{out} = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]'),
}
# How the detector scores one image's pooled `features` (its arrays in `arrays`), as core.quality.open_set does.
_SCORE = {
    "knn": ('f = np.sign(features) * np.sqrt(np.abs(features))   # signed square root, then unit length\n'
            'f /= np.linalg.norm(f)\n'
            'distances = np.sqrt(np.clip(2 - 2 * arrays["bank"].astype(np.float64) @ f, 0, None))\n'
            'score = np.sort(distances)[detector["k"] - 1]   # to the k-th nearest training image'),
    "mahalanobis": ('score = min(d @ arrays["precision"] @ d for d in features - arrays["means"])'
                    '   # to the nearest class mean'),
}
_TEMPERATURE = ('probabilities = probabilities ** (1 / card["temperature"])   # calibrated: softmax(log p / T)\n'
                'probabilities /= probabilities.sum()\n')
_CLASS = 'print(card["classes"][int(np.argmax(probabilities))], float(np.max(probabilities)))\n'


def snippet(fmt: str, file: str, card: dict[str, Any] | None = None) -> str:
    """A few lines of Python that classify photo.jpg with the export `file` and its model_card.json; with the
    card's temperature and open-set detector (its feature model and arrays beside the model), applied."""
    card = card or {}
    detector = card.get("open_set") or {}
    scores = detector.get("method") in _SCORE and "feature_model" in detector
    lines = ("import json\n\nimport numpy as np\nfrom PIL import Image\n\n"
             f'card = json.load(open("{CARD_NAME}"))\n'
             'size = card["image_size"]\n'
             'image = Image.open("photo.jpg").convert("RGB").resize((size, size), Image.BILINEAR)\n'
             'x = np.asarray(image, dtype=np.float32)[None]   # RGB 0..255: the model preprocesses itself\n'
             f'{_LOAD[fmt].format(file=file, out="probabilities")}\n'
             f'{_TEMPERATURE if card.get("temperature") else ""}')
    if not scores:
        return lines + _CLASS
    return (lines + '\n# Does it look like none of the classes? The open-set detector scores the frozen backbone\'s\n'
            '# pooled features (the second model); above its threshold, no class is claimed.\n'
            'detector = card["open_set"]\n'
            'arrays = np.load(detector["arrays"])\n'
            f'{_LOAD[fmt].format(file=detector["feature_model"], out="features").split(chr(10), 1)[1]}\n'
            f'{_SCORE[detector["method"]]}\n'
            'if score > detector["threshold"]:\n'
            '    threshold = detector["threshold"]\n'
            '    print(f"looks like none of the classes (score {score:.3f}, threshold {threshold:.3f})")\n'
            'else:\n    ' + _CLASS)


def readme(fmt: str, file: str, classes: Sequence[str], card: dict[str, Any] | None = None) -> str:
    card = card or {}
    carried = ""
    if card.get("temperature"):
        carried += (f" Its probabilities are calibrated by temperature scaling (T = {card['temperature']:.3f} in "
                    "the card, fitted on the sweep's out-of-fold scores).")
    if (card.get("open_set") or {}).get("feature_model"):
        carried += (f" An open-set detector ({card['open_set']['method']}) says when an image looks like none of "
                    f"the classes: its numbers are in the card, its arrays in `{ARRAYS_NAME}`, and "
                    f"`{card['open_set']['feature_model']}` computes the features it scores.")
    return (f"# {file}: {LABELS[fmt]} export from Transfer Lab\n\n"
            f"Classes: {', '.join(classes)}. `{CARD_NAME}` holds the model card: classes, image size, "
            "preprocessing, data and split, parameters, CV and test figures, and the parity check this "
            f"export passed against the original model ({RUNTIMES[fmt]}).{carried}\n\n"
            f"```python\n{snippet(fmt, file, card)}```\n")
