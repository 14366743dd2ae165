"""Production pins its image by digest: `repository@sha256:...`, the image the release built and pushed.

A tag can be moved by anyone who can push; a digest names the exact image. With a registry configured
(mlops.yml `deploy.registry`, MLOPS_IMAGE_REGISTRY), the digest is what the registry holds under the
version's tag, asked through the Docker engine (its credentials, its insecure-registry rules); when
this engine holds the image it built, that image must be the one the registry holds. Without a
registry there is nothing a cluster could pull by digest: the tag is used and every place that names
the image says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.config import Settings
from ml_service.deploy.image import image_repository
from ml_service.deploy.qa import DeployError


@dataclass(frozen=True)
class PinnedImage:
    """The production image of a model version: by digest when it was pushed to a registry."""

    repository: str
    tag: str
    digest: str = ""

    @property
    def reference(self) -> str:
        """repository@sha256:... when pinned, else repository:tag."""
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"

    def describe(self) -> str:
        """One line for commit messages and reports."""
        if self.digest:
            return f"{self.reference} (pushed as tag {self.tag})"
        return f"{self.reference} (a tag, not a digest: no registry configured, deploy.registry in mlops.yml)"


def pinned_image(settings: Settings, model_name: str, version: str) -> PinnedImage:
    """The image of a model version for production; DeployError when the registry does not hold it, or holds
    another image than the one built here under its tag."""
    repository, tag = image_repository(settings, model_name), str(version)
    if not settings.image_registry:
        return PinnedImage(repository, tag)
    from docker.errors import APIError, ImageNotFound

    from ml_service.containers import docker_client

    reference = f"{repository}:{tag}"
    client = docker_client()
    try:
        digest = client.images.get_registry_data(reference).id
    except APIError as exc:
        raise DeployError(f"image {reference} is not in the registry {settings.image_registry} "
                          f"({exc.explanation}): build and push it with `mlops image build --model "
                          f"{model_name}:{tag}`") from None
    try:
        local = client.images.get(reference)
    except ImageNotFound:
        return PinnedImage(repository, tag, digest)  # built elsewhere (another agent): the registry's word
    pushed = {entry.split("@", 1)[1] for entry in local.attrs.get("RepoDigests") or []
              if entry.startswith(f"{repository}@")}
    if digest not in pushed:
        raise DeployError(f"the registry holds {repository}@{digest} under tag {tag}, not the image built here "
                          f"({local.id[:19]}): push it again with `mlops image build --model {model_name}:{tag}`")
    return PinnedImage(repository, tag, digest)
