"""docker-compose.yml (issue 15, item 2): valid against the Compose specification, and every
long-running service restarts and reports its health. `docker compose` cannot run here, so the
file is validated against the specification's JSON schema (the copy check-jsonschema ships,
`vendor.compose-spec`), and tests/reliability/test_health_checks.py runs the health check
commands against real processes.
"""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.conf import settings

COMPOSE = Path(settings.BASE_DIR) / "docker-compose.yml"
LONG_RUNNING = ["postgres", "redis", "web", "worker", "worker-bulk", "beat"]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the `<<: *app` merges


def healthcheck_test(service: str) -> list[str]:
    return compose()["services"][service]["healthcheck"]["test"]


def compose_spec_validator() -> jsonschema.protocols.Validator:
    import check_jsonschema

    path = (Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
            / "compose-spec.json")
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_follows_the_compose_specification():
    validator = compose_spec_validator()
    document = compose()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(document)]
    assert errors == []

    # The schema does catch mistakes (a misspelt health check key, a wrong type).
    broken = copy.deepcopy(document)
    broken["services"]["web"]["healthcheck"]["intervall"] = "30s"
    broken["services"]["worker"]["restart"] = ["always"]
    messages = " ".join(e.message for e in validator.iter_errors(broken))
    assert "'intervall'" in messages and "['always'] is not of type 'string'" in messages


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_long_running_services_restart_and_report_their_health(service):
    definition = compose()["services"][service]
    assert definition["restart"] == "unless-stopped"
    assert definition["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}


def test_health_checks_are_the_tested_commands():
    assert healthcheck_test("web")[1:4] == ["python", "-m", "config.probe"]
    # `$$HOSTNAME`: compose would otherwise substitute the host's variable at `up` time.
    assert "celery -A config inspect ping -d celery@$$HOSTNAME" in healthcheck_test("worker")[1]
    assert healthcheck_test("beat")[1:] == ["python", "manage.py", "health_check", "--only",
                                            "beat"]
    assert compose()["services"]["migrate"]["restart"] == "no"


def test_the_workers_follow_the_one_machine_lane_layout():
    """README "Lanes, queues and workers": live and sends on one worker, bulk and maintenance
    on the other, so no bulk job ever holds a live delivery back; together they serve every
    queue a task is routed to."""
    services = compose()["services"]
    queues = {}
    for name in ("worker", "worker-bulk"):
        command = services[name]["command"][-1]
        queues[name] = set(command.split(" -Q ")[1].split(" ")[0].split(","))
        assert "celery -A config inspect ping" in services[name]["healthcheck"]["test"][1]
    assert queues == {"worker": {"live", "sending"}, "worker-bulk": {"bulk", "maintenance"}}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} == queues["worker"] | queues["worker-bulk"]
