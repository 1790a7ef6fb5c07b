"""azfn's own checkov check CKV_AZFN_4: a Function App that can be Flex Consumption sends no
`siteConfig` property that Flex Consumption rejects.

Flex Consumption sites fail the deployment with ARM error 51021 ("The following site configuration
property (Site.SiteConfig.…) for Flex Consumption sites is invalid") for, among others, `ftpsState`,
`linuxFxVersion`, `use32BitWorkerProcess`, `netFrameworkVersion`, `preWarmedInstanceCount` and
`functionsRuntimeScaleMonitoringEnabled` (reports quoted in Azure/terraform-azurerm-avm-res-web-site#283
and #360, microsoft/azure-pipelines-tasks#21032). Regions roll the validation out at different times, so
a template that deploys today can break tomorrow. A site that has `functionAppConfig` (Flex) may set
these only through an expression that leaves them out on Flex (`isFlex ? null : ...`), never as a
plain value.
"""

from __future__ import annotations

from typing import Any

from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

FLEX_REJECTED = (
    "alwaysOn",
    "ftpsState",
    "linuxFxVersion",
    "windowsFxVersion",
    "use32BitWorkerProcess",
    "netFrameworkVersion",
    "preWarmedInstanceCount",
    "functionsRuntimeScaleMonitoringEnabled",
    "functionAppScaleLimit",
)


def resource_body(conf: dict[str, Any]) -> dict[str, Any]:
    while isinstance(conf.get("config"), dict) and ("condition" in conf or "loop_type" in conf):
        conf = conf["config"]
    return conf


def is_plain_value(value: Any) -> bool:
    """A literal (or a parameter/variable name, which pycep gives as a string), not an expression."""
    return value is not None and not isinstance(value, dict)


class FlexSiteConfig(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure a Flex Consumption Function App sets no siteConfig property that Flex rejects",
            id="CKV_AZFN_4",
            categories=(CheckCategories.GENERAL_SECURITY,),
            supported_resources=("Microsoft.Web/sites",),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        props = resource_body(conf).get("properties")
        if not isinstance(props, dict) or props.get("functionAppConfig") is None:
            return CheckResult.UNKNOWN
        site_config = props.get("siteConfig")
        if not isinstance(site_config, dict):
            return CheckResult.PASSED
        plain = [key for key in FLEX_REJECTED if key in site_config and is_plain_value(site_config[key])]
        self.evaluated_keys = [f"properties/siteConfig/{key}" for key in plain] or ["properties/siteConfig"]
        return CheckResult.FAILED if plain else CheckResult.PASSED


flex_site_config = FlexSiteConfig()
