"""trigger:, pr: and resources.pipelines filters, with Azure's branch and path matching."""
from __future__ import annotations

import fnmatch


def _branch(name: str) -> str:
    return name[len("refs/heads/"):] if name.startswith("refs/heads/") else name


def _branch_matches(pattern: str, branch: str) -> bool:
    return fnmatch.fnmatchcase(_branch(branch), _branch(str(pattern)))


def _path_matches(pattern: str, path: str) -> bool:
    pattern = str(pattern).strip("/")
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern + "/*")
    return path == pattern or path.startswith(pattern + "/")


def _filter(spec, key: str) -> tuple[list, list]:
    value = spec.get(key) if isinstance(spec, dict) else None
    if value is None:
        return [], []
    if isinstance(value, list):
        return value, []
    return list(value.get("include") or []), list(value.get("exclude") or [])


def branch_filter_matches(spec, branch: str) -> bool:
    """Includes (none: every branch) minus excludes."""
    include, exclude = _filter(spec, "branches")
    if include and not any(_branch_matches(p, branch) for p in include):
        return False
    return not any(_branch_matches(p, branch) for p in exclude)


def paths_filter_matches(spec, changed: list[str] | None) -> bool:
    """True when some changed path is included and not excluded (no paths filter: always)."""
    include, exclude = _filter(spec, "paths")
    if not include and not exclude:
        return True
    if changed is None:  # unknown change set (first push of a branch): run
        return True
    for path in changed:
        if include and not any(_path_matches(p, path) for p in include):
            continue
        if any(_path_matches(p, path) for p in exclude):
            continue
        return True
    return False


def trigger_matches(spec, branch: str, changed: list[str] | None) -> bool:
    """`trigger:` (branch = the pushed branch) and `pr:` (branch = the target branch) semantics:
    absent means every branch; `none` means never; a list names branches; a mapping filters
    branches and paths."""
    if spec is None:
        return True
    if spec == "none" or spec is False:
        return False
    if isinstance(spec, list):
        return any(_branch_matches(p, branch) for p in spec)
    return branch_filter_matches(spec, branch) and paths_filter_matches(spec, changed)


def resource_trigger_matches(resource: dict, branch: str) -> bool:
    """resources.pipelines[].trigger: true, or a branches filter; absent or false: no trigger."""
    trigger = resource.get("trigger")
    if trigger is None or trigger is False or str(trigger).lower() in ("false", "none"):
        return False
    if trigger is True or str(trigger).lower() == "true":
        return True
    return branch_filter_matches(trigger, branch)
