"""What ``make synth`` prints after synthesis: resources by type and cdk-nag's verdict with its acknowledgments."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarise(out_dir: Path) -> tuple[str, bool]:
    """The summary text, and whether cdk-nag passed."""
    lines = []
    for template_path in sorted(out_dir.glob("*.template.json")):
        template = json.loads(template_path.read_text())
        types = Counter(r["Type"] for r in template["Resources"].values())
        lines.append(f"{template_path.name}: {sum(types.values())} resources")
        lines.extend(f"  {count:4d}  {kind}" for kind, count in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])))
    report = json.loads((out_dir / "validation-report.json").read_text())
    passed = True
    for plugin in report.get("pluginReports", []):
        violations = sum(len(v.get("violatingConstructs", [])) for v in plugin.get("violations", []))
        acknowledged: Counter[str] = Counter()
        for v in plugin.get("suppressedViolations", []):
            acknowledged[v["ruleName"].split("[")[0]] += len(v.get("violatingConstructs", []))
        passed = passed and plugin.get("conclusion") == "success"
        lines.append(
            f"cdk-nag {plugin['pluginName']}: {plugin.get('conclusion')}, {violations} unacknowledged findings, "
            f"{sum(acknowledged.values())} acknowledged (each on its resource, with its reason)"
        )
        lines.extend(f"  {n:4d}  {rule}" for rule, n in sorted(acknowledged.items()))
    return "\n".join(lines), passed


if __name__ == "__main__":
    text, ok = summarise(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out"))
    print(text)
    sys.exit(0 if ok else 1)
