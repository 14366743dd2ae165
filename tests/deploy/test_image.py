"""The scoring image's build context: a checkout without the platform's recipe is a clear error."""
import pytest

from ml_service.config import load_settings
from ml_service.containers import ImageError
from ml_service.deploy.image import assemble_context


def test_a_missing_scoring_recipe_is_an_image_error_naming_it(tmp_path):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: p, name: m, task: regression}\n")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    with pytest.raises(ImageError, match="Dockerfile.scoring"):
        assemble_context(settings, tmp_path / "model", tmp_path / "context")


def test_the_image_pins_the_models_own_requirements_at_the_installed_versions_and_never_mlflow(tmp_path):
    from importlib.metadata import version

    from ml_service.deploy.image import requirements

    (tmp_path / "requirements.txt").write_text("mlflow==2.0  # the recorder\nscikit-learn==0.1\n-r other.txt\n\n"
                                               "MLflow-Skinny\n")
    pinned = dict(line.split("==") for line in requirements(tmp_path, "x").splitlines())
    assert pinned["scikit-learn"] == version("scikit-learn")
    assert "mlflow" not in pinned and "mlflow-skinny" not in pinned
