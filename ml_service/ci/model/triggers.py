"""trigger:, pr: and resources.pipelines filters, with Azure's branch and path matching.

Paths: a pattern without wildcards matches that file or everything under that folder; with
wildcards it matches whole paths, `*` and `?` within one path segment, `**` across segments
(`**/*.md`: every Markdown file, at the root too). Completion triggers fire when the source run
succeeded, or, with a `stages:` filter, when every listed stage of it succeeded.
"""
from __future__ import annotations

import fnmatch
import re

from ml_service.ci.model.expressions import as_bool

OK = ("Succeeded", "SucceededWithIssues")


def _branch(name: str) -> str:
    return name[len("refs/heads/"):] if name.startswith("refs/heads/") else name


def _branch_matches(pattern: str, branch: str) -> bool:
    return fnmatch.fnmatchcase(_branch(branch), _branch(str(pattern)))


def _glob(pattern: str) -> re.Pattern:
    """A path wildcard as a regular expression: `*` and `?` stay in a segment, `**` crosses them."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _path_matches(pattern: str, path: str) -> bool:
    pattern = str(pattern).strip("/")
    if any(c in pattern for c in "*?["):
        return _glob(pattern).fullmatch(path) is not None
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
        # the most specific (longest) filter that matches a path decides: "If you exclude a path, you can't also
        # include it unless you qualify it to a deeper folder" (repos/azure-repos-git.md "Paths"); no includes
        # means the root is included
        included = max((len(str(p).strip("/")) for p in include if _path_matches(p, path)),
                       default=-1 if include else 0)
        excluded = max((len(str(p).strip("/")) for p in exclude if _path_matches(p, path)), default=-1)
        if included >= 0 and included > excluded:
            return True
    return False


def trigger_matches(spec, branch: str, changed: list[str] | None) -> bool:
    """`trigger:` (branch = the pushed branch) and `pr:` (branch = the target branch) semantics:
    absent means every branch; `none` means never; a list names branches; a mapping filters
    branches and paths."""
    if spec is None:
        return True
    if spec is False or (isinstance(spec, str) and spec.strip().lower() in ("none", "false")):
        return False
    if isinstance(spec, list):
        return any(_branch_matches(p, branch) for p in spec)
    return branch_filter_matches(spec, branch) and paths_filter_matches(spec, changed)


def resource_trigger_matches(resource: dict, branch: str, result: str = "Succeeded",
                             stages: dict[str, str] | None = None, tags: list[str] | None = None) -> bool:
    """Does a completed run of the source pipeline (its result, its stage results) trigger this resource?

    resources.pipelines[].trigger: true, or a mapping (enabled, branches, stages, tags); absent,
    false or none: no trigger. Without `stages:` the source run must have succeeded; with it,
    every listed stage must have. With `tags:`, the source run must carry every listed tag (added by its steps
    with ##vso[build.addbuildtag]; resources.md: the trigger's tags are AND'ed), compared ignoring case.
    """
    trigger = resource.get("trigger")
    if trigger is None or trigger is False or str(trigger).lower() in ("false", "none"):
        return False
    if not isinstance(trigger, dict):
        return as_bool(trigger) and result in OK
    if not as_bool(trigger.get("enabled", True)):
        return False
    carried = {str(t).lower() for t in tags or []}
    if trigger.get("tags") and not all(str(t).lower() in carried for t in _names(trigger["tags"])):
        return False
    if not branch_filter_matches(trigger, branch):
        return False
    listed = trigger.get("stages")
    if listed:
        return all((stages or {}).get(str(stage)) in OK for stage in _names(listed))
    return result in OK


def _names(value) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _select(payload, path: str):
    """The value at a dot-separated JSON path of a webhook payload (`resource.dataset`), or None."""
    value = payload
    for part in str(path).strip().lstrip("$").strip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def webhook_trigger_matches(resource: dict, connection: str, payload: dict) -> bool:
    """Does an event posted to `connection` trigger this resources.webhooks[] entry?

    The entry's connection must be the one the event came through, and every filter's JSON path must
    select its value (compared as strings, as Azure compares them); no filters: every event.
    """
    if not isinstance(resource, dict) or str(resource.get("connection", "")) != connection:
        return False
    for item in resource.get("filters") or []:
        if not isinstance(item, dict):
            return False
        value = _select(payload, item.get("path", ""))
        if value is None or str(value) != str(item.get("value", "")):
            return False
    return True
