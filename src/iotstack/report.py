"""How render results are shown to the user."""

from __future__ import annotations

from pathlib import Path

from iotstack import console
from iotstack.render import RenderReport


def show_render_report(stack_dir: Path, report: RenderReport) -> None:
    """Summarise a render: what was written, what was kept, what to do next."""
    for path in report.created:
        console.info(f"  created  {path}")
    for path in report.updated:
        console.info(f"  updated  {path}")
    if report.env_added:
        console.info(
            f"  .env     added {', '.join(report.env_added)} (values not shown)"
        )
    for path in report.overwritten_edited:
        console.warn(f"{path}: your edits were overwritten (--force)")
    for path, text in report.kept_edited.items():
        console.warn(
            f"{path}: you edited this generated file, so it was kept; "
            "the rendered version differs as below (use --force to replace it)"
        )
        console.diff(text)

    changed = len(report.created) + len(report.updated)
    console.success(
        f"rendered {stack_dir}: {changed} written, {len(report.unchanged)} unchanged, "
        f"{len(report.kept_edited)} kept"
    )


def show_diff(report: RenderReport) -> None:
    """Print what a render would change."""
    if not report.diffs and not report.kept_edited:
        console.success("nothing to change")
        return
    for text in report.diffs.values():
        console.diff(text)
    for path, text in report.kept_edited.items():
        console.warn(f"{path}: edited by you; a render keeps it unless --force")
        console.diff(text)
