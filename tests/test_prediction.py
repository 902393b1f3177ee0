"""`mlplab predict`: a refused image never pays for loading the model, and mlplab's own
models are read without importing Keras."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from test_preprocess import huge_png

PROBE = """
import json, sys
from pathlib import Path
from mlplab.prediction import predict_files
results = predict_files(sys.argv[1], [Path(p) for p in sys.argv[2:]])
print(json.dumps({"errors": [r.error for r in results], "digits": [r.digit for r in results],
                  "keras": "keras" in sys.modules, "jax": "jax" in sys.modules}))
"""


def probe(run, *files) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(run), *map(str, files)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run_dir(lab_dir):
    return lab_dir / "model_1"


def test_bomb_is_refused_without_loading_the_model(run_dir, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(huge_png(30_000, 30_000))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    got = probe(run_dir, bomb, text)
    assert "900,000,000 pixels" in got["errors"][0] and "notes.png" in got["errors"][1]
    assert got["keras"] is False  # the 30,000 × 30,000 PNG costs no Keras start


def test_model_is_loaded_once_an_image_passes_without_starting_keras(run_dir, tmp_path,
                                                                     sample):
    """The lab's model is read in NumPy (mlplab.inference): predicting a photo costs no
    Keras or JAX start (seconds and some 300 MB), and gives the model's answer."""
    from PIL import Image

    good = tmp_path / "seven.png"
    Image.fromarray(sample.x_test[0]).save(good)  # a t10k 7, MNIST style
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(huge_png(30_000, 30_000))
    got = probe(run_dir, good, bomb)
    assert got["errors"][0] == "" and got["errors"][1]
    assert got["digits"][0] == int(sample.y_test[0]) and got["digits"][1] is None
    assert got["keras"] is False and got["jax"] is False


def test_a_folder_that_is_not_a_run_fails_before_any_image(tmp_path, capsys):
    from mlplab.cli import main

    (tmp_path / "d.png").write_bytes(huge_png(30_000, 30_000))
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path), str(tmp_path / "d.png")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "900,000,000" not in err and err.count("\n") == 1


def test_a_folder_gives_its_images_of_every_kind_people_send(tmp_path):
    from mlplab.prediction import expand_inputs

    for name in ("b.HEIC", "a.heif", "c.avif", "d.jpeg", "e.png", "notes.txt", "f.pdf"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in expand_inputs([tmp_path])] == \
        ["a.heif", "b.HEIC", "c.avif", "d.jpeg", "e.png"]


def test_a_worker_process_that_dies_is_a_one_line_error(tmp_path, monkeypatch):
    import concurrent.futures
    from concurrent.futures.process import BrokenProcessPool

    from mlplab.errors import MlplabError
    from mlplab.prediction import PARALLEL_FROM, prepare_files

    class Killed(concurrent.futures.ProcessPoolExecutor):
        def map(self, *args, **kwargs):
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Killed)
    files = [tmp_path / f"{i}.png" for i in range(PARALLEL_FROM)]
    with pytest.raises(MlplabError, match=r"stopped \(out of memory.*--jobs 1"):
        prepare_files(files, jobs=2)
