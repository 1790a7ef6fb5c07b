"""azfn's own checkov check: storage accounts must refuse Shared Key access.

checkov has no Bicep rule for `allowSharedKeyAccess`; without it, account keys (and connection
strings built from them) keep working even though the app never needs them.
"""

from __future__ import annotations

from typing import Any

from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class StorageSharedKeyDisabled(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure storage accounts disallow Shared Key access (allowSharedKeyAccess: false)",
            id="CKV_AZFN_1",
            categories=(CheckCategories.IAM,),
            supported_resources=("Microsoft.Storage/storageAccounts",),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        self.evaluated_keys = ["properties/allowSharedKeyAccess"]
        properties = conf.get("properties")
        if isinstance(properties, dict) and properties.get("allowSharedKeyAccess") is False:
            return CheckResult.PASSED
        return CheckResult.FAILED


check = StorageSharedKeyDisabled()
