"""Every deployment's form is built the same way: validated parameters, one schema per kind of
value, a description for each; the Prefect API refuses a bad Custom-run value by name."""

from __future__ import annotations

import importlib

import pytest

from deployments.definitions import load_specs

#: Keys of a parameter's JSON schema that are about its place in a form, not its type.
LAYOUT_KEYS = {"title", "description", "position", "default"}


def _flows():
    seen = {}
    for spec in load_specs():
        path, name = spec.entrypoint.split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        seen[spec.name] = getattr(module, name)
    from flows.prepare import prepare
    from flows.train import train

    return seen | {"prepare": prepare, "train": train}


def _properties(flow) -> dict[str, dict]:
    return flow.parameters.model_dump(mode="json")["properties"]


def _resolved(flow, schema: dict) -> dict:
    """A parameter's schema with ``$ref``s to the flow's definitions inlined."""
    defs = flow.parameters.model_dump(mode="json").get("definitions", {})

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items() if k not in LAYOUT_KEYS}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def test_every_flow_validates_its_parameters_and_describes_each():
    for name, flow in _flows().items():
        assert flow.should_validate_parameters, name
        for param, schema in _properties(flow).items():
            assert schema.get("description"), f"{name}.{param} has no description"


def test_same_parameter_same_schema_in_every_flow():
    by_name: dict[str, dict[str, dict]] = {}
    for flow_name, flow in _flows().items():
        for param, schema in _properties(flow).items():
            by_name.setdefault(param, {})[flow_name] = _resolved(flow, schema)
    shared = {p: s for p, s in by_name.items() if len(s) > 1}
    assert {"symbol", "data_dir", "epochs", "batch_size", "devices", "run_id"} <= set(shared)
    for param, schemas in shared.items():
        # `symbol`/`interval` are optional where a dataset can be named instead
        kinds = {repr(_strip_null(s)) for s in schemas.values()}
        assert len(kinds) == 1, f"{param} differs between flows: {schemas}"


def _strip_null(schema: dict) -> dict:
    any_of = schema.get("anyOf")
    if any_of and {"type": "null"} in any_of:
        rest = [s for s in any_of if s != {"type": "null"}]
        return rest[0] if len(rest) == 1 else {"anyOf": rest}
    return schema


def test_closed_vocabularies_are_enums_and_numbers_are_bounded():
    from flows.prepare import prepare
    from flows.train import train

    train_props = {k: _resolved(train, v) for k, v in _properties(train).items()}
    prepare_props = {k: _resolved(prepare, v) for k, v in _properties(prepare).items()}
    assert "enum" in _strip_null(train_props["checkpoints"])
    assert "enum" in _strip_null(train_props["task_runner"])
    assert "enum" in train_props["models"]["items"]
    assert "enum" in prepare_props["protocol"] and "enum" in prepare_props["scaler"]
    assert train_props["epochs"]["minimum"] == 1
    assert prepare_props["past"]["minimum"] == 1
    assert "pattern" in _strip_null(train_props["devices"])


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("flow_name", "bad", "param"),
    [
        ("train", {"epochs": 0}, "epochs"),
        ("train", {"checkpoints": "sometimes"}, "checkpoints"),
        ("prepare", {"protocol": "leaky"}, "protocol"),
        ("prepare", {"past": -1}, "past"),
        ("pipeline", {"batch_size": 0}, "batch_size"),
        ("pipeline", {"backend": "theano"}, "backend"),
        ("pipeline", {"models_per_gpu": 0}, "models_per_gpu"),
    ],
)
def test_api_refuses_a_bad_custom_run_value_by_name(flow_name, bad, param):
    """What the UI's Custom run does: create a run of the deployment with these parameters."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    flow = _flows()[flow_name]
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(flow.name)
        deployment_id = client.create_deployment(
            flow_id=flow_id, name=f"form-{flow_name}", entrypoint=f"flows/{flow_name}.py",
            parameter_openapi_schema=flow.parameters.model_dump(mode="json"),
            enforce_parameter_schema=True,
        )
        with pytest.raises(PrefectHTTPStatusError) as info:
            client.create_flow_run_from_deployment(deployment_id, parameters=bad)
        assert info.value.response.status_code in (409, 422)
        assert param in info.value.response.text
        good = client.create_flow_run_from_deployment(deployment_id, parameters={})
        assert good.parameters == {}
