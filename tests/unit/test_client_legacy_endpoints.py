from __future__ import annotations

import json
from pathlib import Path

from keyhall.client.legacy_endpoints import ensure_models, with_data_path
from keyhall.client.paths import AwsPaths


def test_rule_sets_are_written_once_per_set_of_endpoints(tmp_path: Path) -> None:
    paths = AwsPaths(home=str(tmp_path))
    endpoints = {"sts": "http://127.0.0.1:8080", "sso": "http://127.0.0.1:8080", "s3": "http://elsewhere"}
    root = ensure_models(paths, endpoints)
    assert root is not None
    rule = json.loads((Path(root) / "sts" / "2011-06-15" / "endpoint-rule-set-1.json").read_text())
    assert rule["rules"][-1]["endpoint"]["url"] == "http://127.0.0.1:8080"
    assert rule["rules"][0]["conditions"][0]["fn"] == "isSet"  # an explicit --endpoint-url still wins
    assert (Path(root) / "sso" / "2019-06-10" / "endpoint-rule-set-1.json").exists()
    assert not (Path(root) / "s3").exists()
    assert ensure_models(paths, dict(endpoints)) == root
    assert ensure_models(paths, {"sts": "http://127.0.0.1:9090"}) != root
    assert ensure_models(paths, {}) is None


def test_data_path_keeps_the_users_own_after_ours() -> None:
    assert with_data_path({"A": "1"}, "/m", "/mine") == {"A": "1", "AWS_DATA_PATH": "/m:/mine"}
    assert with_data_path({"A": "1"}, "/m", None) == {"A": "1", "AWS_DATA_PATH": "/m"}
    assert with_data_path({"A": "1"}, None, "/mine") == {"A": "1"}
