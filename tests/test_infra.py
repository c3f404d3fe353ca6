"""The Bicep, checked without Azure: every file parses, and the deployment has the properties
the design promises (read from the parsed files, not from text where it matters)."""

from __future__ import annotations

import ast
import json
import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_bicep
from pycep import BicepParser

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
ROLE = {
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Storage Queue Data Reader": "19e7f393-937e-4f77-808e-94535e297925",
    "Storage Queue Data Message Processor": "8a0f0c08-91a1-4084-bc3d-661d67233fed",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
}
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"  # more than the app needs
RUNS_CONNECTION = "ASSISTANTS_STORAGE_CONNECTION_STRING"  # the queue trigger's connection name
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName="


def syntax_errors(source: bytes) -> list[str]:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    errors = []
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            errors.append(f"line {node.start_point[0] + 1}: {node.type} {node.text!r:.60}")
        stack.extend(node.children)
    return errors


@cache
def parsed(name: str) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=INFRA / name))


def resources(name: str, kind: str) -> list[dict[str, Any]]:
    """The bodies of the resources of one type a file declares (a conditional one's included)."""
    found = []
    for resource in parsed(name)["resources"].values():
        if resource["type"] == kind and not resource["existing"]:
            body = resource["config"]
            found.append(dict(body["config"] if "condition" in body else body))
    return found


def only(name: str, kind: str) -> dict[str, Any]:
    found = resources(name, kind)
    assert len(found) == 1, f"{name}: expected one {kind}, found {len(found)}"
    return found[0]


def dotted(expression: Any) -> str:
    """A property access as Bicep writes it (`storage.properties.primaryEndpoints.queue`,
    `account.properties.endpoints['X']`). pycep drops a non-null assertion (`model!.outputs`)."""
    if isinstance(expression, str):
        return expression
    operator = expression["operator"]
    operands = operator["operands"]
    if operator["type"] == "index_accessor":
        return f"{dotted(operands['operand_1'])}['{operands['operand_2']}']"
    assert operator["type"] == "property_accessor", expression
    return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"


def conditional(expression: Any) -> tuple[Any, Any, Any]:
    """`condition ? a : b` as (condition, a, b)."""
    operator = expression["operator"]
    assert operator["type"] == "conditional", expression
    operands = operator["operands"]
    return operands["condition"], operands["true_value"], operands["false_value"]


def condition_of(name: str, symbol: str) -> Any:
    """The `if (...)` of a resource or module; None when it has none."""
    declared = parsed(name)["resources"].get(symbol) or parsed(name)["modules"][symbol]
    return declared["config"].get("condition")


def sample_settings() -> dict[str, str]:
    values: dict[str, str] = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return values


def test_there_is_bicep_to_check() -> None:
    names = {str(f.relative_to(INFRA)) for f in BICEP_FILES}
    assert {
        "main.bicep",
        "modules/functions.bicep",
        "modules/storage.bicep",
        "modules/roles.bicep",
        "modules/openai.bicep",
    } <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    assert syntax_errors(path.read_bytes()) == []
    assert parsed(str(path.relative_to(INFRA)))["resources"] or path.name == "main.bicep"


def test_the_syntax_check_catches_errors() -> None:
    assert syntax_errors(b"resource x 'A/b@2020-01-01' = {\n  name: 'x'\n") != []
    assert syntax_errors(b"var x = {\n  ...y\n}\n") != []  # spread: a form the checks cannot read


def test_flex_consumption_python_311_https_only() -> None:
    plan = only("modules/functions.bicep", "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    app = only("modules/functions.bicep", "Microsoft.Web/sites")
    assert app["kind"] == "functionapp,linux"
    assert app["properties"]["httpsOnly"] is True
    assert app["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    config = app["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"] == {
        "maximumInstanceCount": "maximumInstanceCount",
        "instanceMemoryMB": "instanceMemoryMB",
        "triggers": {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}},
    }
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert app["identity"]["type"] == "UserAssigned"
    assert app["properties"]["keyVaultReferenceIdentity"] == "identityId"
    main = parsed("main.bicep")["parameters"]
    assert main["maximumInstanceCount"]["type"] == main["instanceMemoryMB"]["type"] == "int"


def test_http_concurrency_is_a_parameter_well_above_pythons_default_of_one() -> None:
    parameter = parsed("main.bicep")["parameters"]["httpPerInstanceConcurrency"]
    assert parameter["type"] == "int"
    assert parameter["default"] == 16
    assert {"type": "min_value", "argument": 1} in parameter["decorators"]
    module = parsed("main.bicep")["modules"]["api"]["config"]["params"]
    assert module["httpPerInstanceConcurrency"] == "httpPerInstanceConcurrency"
    assert parsed("modules/functions.bicep")["parameters"]["httpPerInstanceConcurrency"]["type"] == "int"


def test_app_settings_use_identity_and_key_vault() -> None:
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    for service in ("blob", "queue", "table"):
        assert f"AzureWebJobsStorage__{service}ServiceUri" in settings
    assert "AzureWebJobsStorage" not in settings  # no connection string
    assert settings["ASSISTANTS_API_KEYS"].startswith("@Microsoft.KeyVault(VaultName=")
    assert (
        "ASSISTANTS_STORAGE_ACCOUNT_URL" in settings
        and "ASSISTANTS_STORAGE_CONNECTION_STRING" not in settings
    )
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert (
        settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "ClientId=${identityClientId};Authorization=AAD"
    )
    assert dotted(settings["ASSISTANTS_STORAGE_ACCOUNT_URL"]) == "storage.properties.primaryEndpoints.table"


def test_http_streams_index_at_init_in_azure_and_locally() -> None:
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    assert settings["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    assert sample_settings()["PYTHON_ENABLE_INIT_INDEXING"] == "1"


def test_the_runs_queue_connection_is_by_identity_in_azure_and_a_string_locally() -> None:
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    connection = {k: v for k, v in settings.items() if k.startswith(RUNS_CONNECTION)}
    assert {k: dotted(v) for k, v in connection.items()} == {
        f"{RUNS_CONNECTION}__queueServiceUri": "storage.properties.primaryEndpoints.queue",
        f"{RUNS_CONNECTION}__blobServiceUri": "storage.properties.primaryEndpoints.blob",  # files
        f"{RUNS_CONNECTION}__credential": "managedidentity",
        f"{RUNS_CONNECTION}__clientId": "identityClientId",
    }  # and no plain value, which the host would take for a connection string
    assert sample_settings()[RUNS_CONNECTION] == "UseDevelopmentStorage=true"


def test_one_runs_queue_name_for_the_setting_and_the_queues() -> None:
    main = parsed("main.bicep")
    assert main["variables"]["runsQueueName"]["value"] == "runs" == sample_settings()["ASSISTANTS_RUNS_QUEUE"]
    for module in ("storage", "api"):
        assert main["modules"][module]["config"]["params"]["runsQueueName"] == "runsQueueName"
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    assert settings["ASSISTANTS_RUNS_QUEUE"] == "runsQueueName"


def test_storage_holds_the_runs_queue_and_its_poison_queue() -> None:
    declared = parsed("modules/storage.bicep")["resources"]
    account_api = declared["account"]["api_version"]
    service = only("modules/storage.bicep", "Microsoft.Storage/storageAccounts/queueServices")
    assert service == {"parent": "account", "name": "default"}
    queues = resources("modules/storage.bicep", "Microsoft.Storage/storageAccounts/queueServices/queues")
    assert sorted(queue["name"] for queue in queues) == [
        "${ingestQueueName}-poison",
        "${runsQueueName}-poison",
        "ingestQueueName",
        "runsQueueName",
    ]
    assert all(queue["parent"] == "queues" for queue in queues)
    assert all(
        resource["api_version"] == account_api
        for resource in declared.values()
        if resource["type"].startswith("Microsoft.Storage/")
    )


def test_function_app_queue_triggers_use_the_deployed_queue_and_connection() -> None:
    """Every queue trigger function_app.py declares reads the settings the Bicep sets."""
    tree = ast.parse((ROOT / "function_app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "queue_trigger":
            keywords = {k.arg: k.value for k in node.keywords}
            assert ast.literal_eval(keywords["queue_name"]) in (
                "%ASSISTANTS_RUNS_QUEUE%",
                "%ASSISTANTS_INGEST_QUEUE%",
            )
            assert ast.literal_eval(keywords["connection"]) == RUNS_CONNECTION


def test_host_json_gives_runs_time_and_the_queue_interactive_latency() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    hours, minutes, seconds = (int(part) for part in host["functionTimeout"].split(":"))
    timeout = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    assert timeout == timedelta(minutes=30)  # explicit, and above a run's 10-minute expiry
    assert host["extensions"]["queues"] == {
        "maxPollingInterval": "00:00:02",
        "visibilityTimeout": "00:00:05",
        "batchSize": 8,
        "newBatchThreshold": 4,
        "maxDequeueCount": 3,
        "messageEncoding": "base64",
    }
    assert host["extensions"]["http"] == {"routePrefix": "openai"}
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"


def test_storage_takes_no_keys_and_hosts_the_deployment_container() -> None:
    account = only("modules/storage.bicep", "Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    containers = resources(
        "modules/storage.bicep", "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert sorted(c["name"] for c in containers) == [
        "deploymentContainerName",
        "filesContainerName",
        "indexes",
    ]
    assert all(c["properties"]["publicAccess"] == "None" for c in containers)
    assert parsed("main.bicep")["variables"]["filesContainerName"]["value"] == "files"


def test_the_app_reaches_files_blobs_by_identity() -> None:
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    blob = settings[f"{RUNS_CONNECTION}__blobServiceUri"]
    assert dotted(blob) == "storage.properties.primaryEndpoints.blob"


def test_key_vault_uses_rbac_and_holds_the_keys() -> None:
    vault = only("modules/keyvault.bicep", "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    secrets = resources("modules/keyvault.bicep", "Microsoft.KeyVault/vaults/secrets")
    (secret,) = (secret for secret in secrets if secret["name"] == "secretName")
    assert condition_of("modules/keyvault.bicep", "vault__apiKeys") is None  # always there
    assert secret["properties"]["value"] == "secretValue"
    assert parsed("modules/keyvault.bicep")["parameters"]["secretValue"]["decorators"] == [{"type": "secure"}]


def test_application_insights_takes_only_entra_id_ingestion() -> None:
    insights = only("modules/monitoring.bicep", "Microsoft.Insights/components")["properties"]
    assert insights["DisableLocalAuth"] is True
    assert insights["WorkspaceResourceId"]


def test_the_identity_has_exactly_the_nine_roles() -> None:
    variables = {k: v["value"] for k, v in parsed("modules/roles.bicep")["variables"].items()}
    granted: dict[str, str] = {}
    for assignment in resources("modules/roles.bicep", "Microsoft.Authorization/roleAssignments"):
        properties = assignment["properties"]
        role_variable = properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        role = variables[role_variable]
        name = assignment["name"]["function"]  # stable across deployments: guid(scope, who, role)
        assert name["type"] == "guid"
        assert [dotted(argument) for argument in name["parameters"].values()] == [
            f"{assignment['scope']}.id",
            properties["principalId"],
            role_variable,
        ]
        if properties["principalId"] == "identityPrincipalId":
            assert properties["principalType"] == "ServicePrincipal"
            assert role not in granted
            granted[role] = assignment["scope"]
    assert (
        len(resources("modules/roles.bicep", "Microsoft.Authorization/roleAssignments")) == 11
    )  # + 2 for the user
    assert granted == {
        ROLE["Storage Table Data Contributor"]: "storage",
        ROLE["Storage Blob Data Owner"]: "storage",
        ROLE["Storage Blob Data Contributor"]: "filesContainer",
        ROLE["Storage Queue Data Reader"]: "storage",
        ROLE["Storage Queue Data Message Processor"]: "storage",
        ROLE["Storage Queue Data Message Sender"]: "storage",
        ROLE["Monitoring Metrics Publisher"]: "applicationInsights",
        ROLE["Key Vault Secrets User"]: "vault",
        ROLE["Cognitive Services OpenAI User"]: "modelAccount",  # when created: see below
    }
    assert QUEUE_DATA_CONTRIBUTOR not in variables.values()
    assert QUEUE_DATA_CONTRIBUTOR not in (INFRA / "modules" / "roles.bicep").read_text()


def test_the_model_account_and_deployment_exist_only_without_an_endpoint() -> None:
    main = parsed("main.bicep")
    parameter = main["parameters"]["modelBaseUrl"]
    assert parameter["type"] == "string" and parameter["default"] == ""  # by default: create
    assert main["variables"]["createModel"]["value"] == {
        "function": {"type": "empty", "parameters": {"item_to_test": "modelBaseUrl"}}
    }
    module = main["modules"]["model"]
    assert module["detail"]["path"] == "modules/openai.bicep"
    assert condition_of("main.bicep", "model") == "createModel"
    assert module["config"]["config"]["params"] == {
        "name": "modelAccountName",
        "location": {
            "operator": {
                "type": "conditional",
                "operands": {
                    "condition": {
                        "function": {"type": "empty", "parameters": {"item_to_test": "modelLocation"}}
                    },
                    "true_value": "location",
                    "false_value": "modelLocation",
                },
            }
        },
        "tags": "tags",
        "deploymentName": "modelDeploymentName",
        "modelName": "modelName",
        "modelVersion": "modelVersion",
        "skuName": "modelSkuName",
        "capacity": "modelCapacity",
        "embeddingsDeploymentName": "embeddingsModelName",
        "embeddingsModelName": "embeddingsModelName",
        "embeddingsModelVersion": "embeddingsModelVersion",
        "embeddingsCapacity": "embeddingsCapacity",
    }
    # Nothing else creates an account or a deployment (roles.bicep only refers to the account).
    for other in {m["detail"]["path"] for m in main["modules"].values()} - {"modules/openai.bicep"}:
        assert not resources(other, "Microsoft.CognitiveServices/accounts"), other
        assert not resources(other, "Microsoft.CognitiveServices/accounts/deployments"), other


def test_the_model_account_takes_no_keys_and_holds_the_chat_and_embeddings_deployments() -> None:
    account = only("modules/openai.bicep", "Microsoft.CognitiveServices/accounts")
    assert account["kind"] == "AIServices"
    assert account["name"] == "name"
    assert account["properties"] == {
        "customSubDomainName": "name",  # <name>.openai.azure.com: Entra ID sign-in needs it
        "disableLocalAuth": True,
        "publicNetworkAccess": "Enabled",  # as storage and Key Vault
    }
    deployment, embeddings = resources(
        "modules/openai.bicep", "Microsoft.CognitiveServices/accounts/deployments"
    )
    assert embeddings["properties"]["model"] == {
        "format": "OpenAI",
        "name": "embeddingsModelName",
        "version": "embeddingsModelVersion",
    }
    assert embeddings["dependsOn"] == ["deployment"]  # an account takes one deployment change at a time
    assert deployment["parent"] == "account"
    assert deployment["name"] == "deploymentName"
    assert deployment["sku"] == {"name": "skuName", "capacity": "capacity"}
    assert deployment["properties"]["model"] == {
        "format": "OpenAI",
        "name": "modelName",
        "version": "modelVersion",
    }
    assert condition_of("modules/openai.bicep", "account") is None
    assert condition_of("modules/openai.bicep", "deployment") is None
    declared = parsed("modules/openai.bicep")["resources"].values()
    assert len({resource["api_version"] for resource in declared}) == 1


def test_the_model_parameters_and_their_defaults() -> None:
    parameters = parsed("main.bicep")["parameters"]
    defaults = {name: parameters[name]["default"] for name in parameters if name.startswith("model")}
    assert defaults == {
        "modelBaseUrl": "",
        "modelApiKey": "",
        "modelLocation": "",
        "modelName": "gpt-4o-mini",
        "modelVersion": "2024-07-18",
        "modelDeploymentName": "gpt-4o-mini",
        "modelSkuName": "GlobalStandard",
        "modelCapacity": 30,
    }
    assert parameters["modelCapacity"]["type"] == "int"
    assert {"type": "min_value", "argument": 1} in parameters["modelCapacity"]["decorators"]
    assert {"type": "secure"} in parameters["modelApiKey"]["decorators"]


def test_the_identity_may_call_the_created_model_and_only_then() -> None:
    assignment = parsed("modules/roles.bicep")["resources"]["appModel"]["config"]
    assert assignment["condition"] == "grantModelAccount"
    assert assignment["config"]["scope"] == "modelAccount"
    assert assignment["config"]["properties"]["principalId"] == "identityPrincipalId"
    variables = parsed("modules/roles.bicep")["variables"]
    role = assignment["config"]["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert variables[role]["value"] == ROLE["Cognitive Services OpenAI User"]
    account = parsed("modules/roles.bicep")["resources"]["modelAccount"]
    assert account["existing"] and account["type"] == "Microsoft.CognitiveServices/accounts"
    assert account["config"] == {"name": "modelAccountName"}
    # The same account the model module creates, granted on the same condition, after it exists.
    main = parsed("main.bicep")["modules"]
    roles = main["roles"]["config"]
    assert roles["params"]["modelAccountName"] == main["model"]["config"]["config"]["params"]["name"]
    assert roles["params"]["grantModelAccount"] == condition_of("main.bicep", "model") == "createModel"
    assert roles["dependsOn"] == ["model"]


def test_the_model_base_url_is_set_in_both_branches() -> None:
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    assert settings["ASSISTANTS_MODEL_BASE_URL"] == "modelBaseUrl"
    passed = parsed("main.bicep")["modules"]["api"]["config"]["params"]["modelBaseUrl"]
    condition, created, given = conditional(passed)
    assert (condition, dotted(created), given) == ("createModel", "model.outputs.baseUrl", "modelBaseUrl")
    # The created account's v1 base: its OpenAI endpoint, then openai/v1/, one slash between.
    module = parsed("modules/openai.bicep")
    endpoint = module["variables"]["openAiEndpoint"]["value"]
    assert dotted(endpoint) == "account.properties.endpoints['OpenAI Language Model Instance API']"
    condition, with_slash, without_slash = conditional(module["outputs"]["baseUrl"]["value"])
    assert condition == {
        "function": {
            "type": "ends_with",
            "parameters": {"string_to_search": "openAiEndpoint", "string_to_find": "/"},
        }
    }
    assert (with_slash, without_slash) == ("${openAiEndpoint}openai/v1/", "${openAiEndpoint}/openai/v1/")
    assert dotted(module["outputs"]["deploymentName"]["value"]) == "deployment.name"


def test_the_model_key_goes_only_through_key_vault() -> None:
    main = parsed("main.bicep")
    # Stored only with an existing endpoint (the created account takes no keys) and a key.
    assert main["variables"]["storeModelApiKey"]["value"] == {
        "operator": {
            "type": "and",
            "operands": {
                "operand_1": {"operator": {"type": "not", "operands": {"bool_value": "createModel"}}},
                "operand_2": {
                    "operator": {
                        "type": "not",
                        "operands": {
                            "bool_value": {
                                "function": {"type": "empty", "parameters": {"item_to_test": "modelApiKey"}}
                            }
                        },
                    }
                },
            },
        }
    }
    vault = main["modules"]["vault"]["config"]["params"]
    assert conditional(vault["modelApiKey"]) == ("storeModelApiKey", "modelApiKey", "")
    assert vault["modelApiKeySecretName"] == "modelApiKeySecretName"
    assert main["variables"]["modelApiKeySecretName"]["value"] == "assistants-model-api-key"
    # The key reaches no other module: the app gets the secret's name, never its value.
    for name, module in main["modules"].items():
        config = module["config"].get("config", module["config"])
        if name != "vault":
            assert not re.search(r"\bmodelApiKey\b", json.dumps(config["params"])), name
    api = main["modules"]["api"]["config"]["params"]
    assert conditional(api["modelApiKeySecretName"]) == ("storeModelApiKey", "modelApiKeySecretName", "")

    keyvault = parsed("modules/keyvault.bicep")
    assert {"type": "secure"} in keyvault["parameters"]["modelApiKey"]["decorators"]
    secret = keyvault["resources"]["modelKey"]
    assert secret["type"] == "Microsoft.KeyVault/vaults/secrets"
    assert secret["config"]["condition"] == {
        "operator": {
            "type": "not",
            "operands": {
                "bool_value": {"function": {"type": "empty", "parameters": {"item_to_test": "modelApiKey"}}}
            },
        }
    }
    assert secret["config"]["config"]["parent"] == "vault"
    assert secret["config"]["config"]["name"] == "modelApiKeySecretName"
    assert secret["config"]["config"]["properties"]["value"] == "modelApiKey"

    functions = parsed("modules/functions.bicep")
    assert not any({"type": "secure"} in p["decorators"] for p in functions["parameters"].values())
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    condition, absent, present = conditional(settings["ASSISTANTS_MODEL_API_KEY"])
    assert condition == {
        "function": {"type": "empty", "parameters": {"item_to_test": "modelApiKeySecretName"}}
    }
    assert absent == ""
    reference = functions["variables"][present]["value"]
    assert reference == KEY_VAULT_REFERENCE + "${modelApiKeySecretName})"
    assert settings["ASSISTANTS_API_KEYS"] == KEY_VAULT_REFERENCE + "${apiKeysSecretName})"  # the same way
    assert not re.search(r"\bmodelApiKey\b", (INFRA / "modules" / "functions.bicep").read_text())


def test_no_account_keys_anywhere() -> None:
    for path in [*BICEP_FILES, INFRA / "main.parameters.json"]:
        text = path.read_text()
        assert "AccountKey" not in text and "listKeys" not in text, path
        assert "listkeys" not in text.lower(), path  # ARM function names ignore case


def test_azd_wiring() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert parameters["assistantsApiKeys"]["value"].startswith(
        "$(secretOrRandomPassword ${AZURE_KEY_VAULT_NAME} "
    )
    main = parsed("main.bicep")
    assert main["parameters"]["assistantsApiKeys"]["decorators"][0] == {"type": "secure"}
    outputs = main["outputs"]
    assert {"ASSISTANTS_ENDPOINT", "AZURE_FUNCTION_APP_NAME", "AZURE_KEY_VAULT_NAME"} <= set(outputs)
    # The model: azd environment values, defaulting (where Bicep has a non-empty default) to it.
    model = {name: parameters[name]["value"] for name in parameters if name.startswith("model")}
    assert model == {
        "modelBaseUrl": "${ASSISTANTS_MODEL_BASE_URL}",
        "modelApiKey": "${ASSISTANTS_MODEL_API_KEY}",
        "modelLocation": "${AZURE_OPENAI_LOCATION}",
        "modelName": "${AZURE_OPENAI_MODEL=gpt-4o-mini}",
        "modelVersion": "${AZURE_OPENAI_MODEL_VERSION=2024-07-18}",
        "modelDeploymentName": "${AZURE_OPENAI_DEPLOYMENT=gpt-4o-mini}",
        "modelSkuName": "${AZURE_OPENAI_SKU=GlobalStandard}",
        "modelCapacity": "${AZURE_OPENAI_CAPACITY=30}",
    }
    for name, value in model.items():
        default = main["parameters"][name]["default"]
        assert value.endswith(f"={default}}}" if default != "" else "}"), name
    assert set(model) == {name for name in main["parameters"] if name.startswith("model")}
    assert conditional(outputs["ASSISTANTS_MODEL_ENDPOINT"]["value"])[0] == "createModel"
    assert [dotted(v) for v in conditional(outputs["ASSISTANTS_MODEL_ENDPOINT"]["value"])[1:]] == [
        "model.outputs.baseUrl",
        "modelBaseUrl",
    ]
    condition, created, given = conditional(outputs["ASSISTANTS_MODEL_DEPLOYMENT"]["value"])
    assert (condition, dotted(created), given) == ("createModel", "model.outputs.deploymentName", "")
    # azd saves outputs into the environment, which main.parameters.json reads: an output named
    # like a model input would feed the created endpoint back as "use this existing endpoint".
    inputs = set()
    for value in model.values():
        substitution = re.fullmatch(r"\$\{([A-Z_]+)(=[^}]*)?\}", value)
        assert substitution, value
        inputs.add(substitution[1])
    assert "ASSISTANTS_MODEL_BASE_URL" in inputs
    assert not inputs & set(outputs)
    endpoint = only("modules/functions.bicep", "Microsoft.Web/sites")
    assert endpoint["tags"]  # carries azd-service-name, checked in text below
    assert "'azd-service-name': 'api'" in (INFRA / "modules" / "functions.bicep").read_text()
    azure_yaml = (ROOT / "azure.yaml").read_text()
    for line in ("  api:", "    language: python", "    host: function"):
        assert line in azure_yaml.splitlines()


def test_readme_settings_table_matches_the_sample() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Settings") : readme.index("## Run it under")]
    documented = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert documented == set(sample)


SESSION_EXECUTOR = "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0"  # Azure ContainerApps Session Executor


def test_code_interpreter_runs_in_a_python_session_pool_without_egress() -> None:
    pool = only("modules/sessions.bicep", "Microsoft.App/sessionPools")
    properties = pool["properties"]
    assert properties["containerType"] == "PythonLTS"
    assert properties["poolManagementType"] == "Dynamic"
    assert properties["sessionNetworkConfiguration"] == {"status": "EgressDisabled"}
    lifecycle = properties["dynamicPoolConfiguration"]["lifecycleConfiguration"]
    assert lifecycle == {"lifecycleType": "Timed", "cooldownPeriodInSeconds": "cooldownSeconds"}
    parameters = parsed("modules/sessions.bicep")["parameters"]
    assert parameters["cooldownSeconds"]["default"] == 3600  # the idle hour, as the local sandbox's
    assert {"type": "min_value", "argument": 300} in parameters["cooldownSeconds"]["decorators"]
    assert {"type": "max_value", "argument": 3600} in parameters["cooldownSeconds"]["decorators"]
    assert condition_of("modules/sessions.bicep", "pool") is None
    assert dotted(parsed("modules/sessions.bicep")["outputs"]["poolManagementEndpoint"]["value"]) == (
        "pool.properties.poolManagementEndpoint"
    )


def test_the_identity_may_execute_in_the_pool_and_only_there() -> None:
    (assignment,) = resources("modules/sessions.bicep", "Microsoft.Authorization/roleAssignments")
    variables = parsed("modules/sessions.bicep")["variables"]
    properties = assignment["properties"]
    role = properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert variables[role]["value"] == SESSION_EXECUTOR
    assert assignment["scope"] == "pool"
    assert (properties["principalId"], properties["principalType"]) == (
        "identityPrincipalId",
        "ServicePrincipal",
    )
    name = assignment["name"]["function"]
    assert name["type"] == "guid"
    assert [dotted(argument) for argument in name["parameters"].values()] == [
        "pool.id",
        "identityPrincipalId",
        role,
    ]
    for path in BICEP_FILES:
        if path.name != "sessions.bicep":
            assert SESSION_EXECUTOR not in path.read_text(), path
    module = parsed("main.bicep")["modules"]["sessions"]
    assert module["detail"]["path"] == "modules/sessions.bicep"
    assert dotted(module["config"]["params"]["identityPrincipalId"]) == "identity.outputs.principalId"


def test_the_app_is_given_the_pools_endpoint() -> None:
    settings = only("modules/functions.bicep", "Microsoft.Web/sites/config")["properties"]
    assert settings["ASSISTANTS_SANDBOX_ENDPOINT"] == "sandboxEndpoint"
    passed = parsed("main.bicep")["modules"]["api"]["config"]["params"]["sandboxEndpoint"]
    assert dotted(passed) == "sessions.outputs.poolManagementEndpoint"
    assert sample_settings()["ASSISTANTS_SANDBOX_ENDPOINT"] == ""  # locally: the bubblewrap sandbox
