"""azfn's own checkov checks: no resource in infra/ may accept keys or shared secrets.

checkov 3.3.30 has no Bicep rule for any of these. Loaded with `--external-checks-dir infra/checks`
by infra/scan.sh.

- CKV_AZFN_1: storage accounts refuse Shared Key (`allowSharedKeyAccess: false`), so neither account
  keys nor SAS tokens signed with them work.
- CKV_AZFN_2: Service Bus namespaces refuse SAS keys (`disableLocalAuth: true`) and old TLS.
- CKV_AZFN_3: Application Insights accepts only Entra ID authenticated telemetry
  (`DisableLocalAuth: true`).
"""

from __future__ import annotations

from typing import Any

from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


def resource_body(conf: dict[str, Any]) -> dict[str, Any]:
    """The resource's own body: pycep wraps `if (...)` and `for` resources in another level."""
    while isinstance(conf.get("config"), dict) and ("condition" in conf or "loop_type" in conf):
        conf = conf["config"]
    return conf


def properties(conf: dict[str, Any]) -> dict[str, Any]:
    props = resource_body(conf).get("properties")
    return props if isinstance(props, dict) else {}


class StorageSharedKeyDisabled(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure storage accounts refuse Shared Key authorization (allowSharedKeyAccess: false)",
            id="CKV_AZFN_1",
            categories=(CheckCategories.IAM,),
            supported_resources=("Microsoft.Storage/storageAccounts",),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        self.evaluated_keys = ["properties/allowSharedKeyAccess"]
        return CheckResult.PASSED if properties(conf).get("allowSharedKeyAccess") is False else CheckResult.FAILED


class ServiceBusLocalAuthDisabled(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure Service Bus namespaces refuse SAS keys and require TLS 1.2",
            id="CKV_AZFN_2",
            categories=(CheckCategories.IAM,),
            supported_resources=("Microsoft.ServiceBus/namespaces",),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        self.evaluated_keys = ["properties/disableLocalAuth", "properties/minimumTlsVersion"]
        props = properties(conf)
        keyless = props.get("disableLocalAuth") is True
        tls = props.get("minimumTlsVersion") in ("1.2", "1.3")
        return CheckResult.PASSED if keyless and tls else CheckResult.FAILED


class AppInsightsLocalAuthDisabled(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure Application Insights accepts only Entra ID authenticated telemetry (DisableLocalAuth: true)",
            id="CKV_AZFN_3",
            categories=(CheckCategories.IAM,),
            supported_resources=("Microsoft.Insights/components",),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        self.evaluated_keys = ["properties/DisableLocalAuth"]
        return CheckResult.PASSED if properties(conf).get("DisableLocalAuth") is True else CheckResult.FAILED


storage_shared_key_disabled = StorageSharedKeyDisabled()
service_bus_local_auth_disabled = ServiceBusLocalAuthDisabled()
app_insights_local_auth_disabled = AppInsightsLocalAuthDisabled()
