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
