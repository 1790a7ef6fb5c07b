"""What infra/main.bicep does for given parameters, read with checkov's Bicep parser and evaluated by
infra/bicep_model.py; and that infra/check_types.py catches the mistakes it is there for.

    target/checkov-venv/bin/python -m unittest discover -s infra/tests -t infra   (infra/scan.sh runs it)
"""

from __future__ import annotations

import itertools
import json
import sys
import unittest
from pathlib import Path

INFRA = Path(__file__).resolve().parents[1]
ROOT = INFRA.parent
sys.path.insert(0, str(INFRA))

import bicep_model as m  # noqa: E402
import check_types  # noqa: E402

T = m.load()
ROLE_QUEUE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
ROLE_SB_RECEIVER = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"


def resources_of(rtype: str) -> list[m.Resource]:
    return [r for r in T.resources.values() if r.type == rtype]


def body_name(symbol: str) -> str:
    name = T.resources[symbol].body.pairs["name"]
    return m.evaluate(T, name, {})


class ZoneRedundancy(unittest.TestCase):
    def zone(self, **params):
        return m.evaluate(T, T.variables["zoneRedundancy"], params)

    def test_refused_without_zone_redundant_storage_and_on_y1(self):
        plans = T.params["planType"].allowed
        skus = T.params["storageSku"].allowed
        self.assertIn("Standard_LRS", skus)
        for plan, sku in itertools.product(plans, skus):
            with self.subTest(plan=plan, sku=sku):
                self.assertFalse(self.zone(planType=plan, storageSku=sku, zoneRedundant=False))
                if plan != "Y1" and sku in ("Standard_ZRS", "Standard_GZRS"):
                    self.assertTrue(self.zone(planType=plan, storageSku=sku, zoneRedundant=True))
                    continue
                with self.assertRaises(m.Refused) as refused:
                    self.zone(planType=plan, storageSku=sku, zoneRedundant=True)
                expected = "not available with planType Y1" if plan == "Y1" else "needs storageSku Standard_ZRS"
                self.assertIn(expected, str(refused.exception))

    def test_the_plan_uses_the_checked_value(self):
        plan = T.resources["plan"].body.pairs["properties"].pairs["zoneRedundant"]
        self.assertEqual(plan, m.Ref("zoneRedundancy"))
        sku = m.evaluate(T, T.resources["plan"].body.pairs["sku"], {"planType": "EP1", "zoneRedundant": True})
        self.assertEqual(sku["capacity"], 2, "a zone-redundant Elastic Premium plan keeps two instances")
        with self.assertRaises(m.Refused):
            m.evaluate(T, T.resources["plan"].body.pairs["sku"],
                       {"planType": "EP1", "zoneRedundant": True, "storageSku": "Standard_LRS"})

    def test_the_parameter_says_what_it_costs(self):
        text = (INFRA / "main.bicep").read_text()
        line = next(l for l in text.splitlines() if l.startswith("@description('Spread the plan"))
        self.assertIn("two always-ready instances", line)
        self.assertIn("billed", line)


class SiteSettingsPerPlan(unittest.TestCase):
    def site_config(self, plan: str) -> dict:
        config = T.resources["site"].body.pairs["properties"].pairs["siteConfig"].pairs
        out = {}
        for key, node in config.items():
            if key == "appSettings":
                continue
            value = m.evaluate(T, node, {"planType": plan})
            if value is not None:
                out[key] = value
        return out

    def test_flex_gets_only_what_flex_offers(self):
        flex = self.site_config("FC1")
        for absent in ("ftpsState", "linuxFxVersion", "http20Enabled", "remoteDebuggingEnabled", "healthCheckPath"):
            self.assertNotIn(absent, flex)
        self.assertEqual(flex["minTlsVersion"], "1.2")

    def test_premium_and_consumption(self):
        ep = self.site_config("EP1")
        self.assertEqual(ep["healthCheckPath"], "/api/hello")
        self.assertIs(ep["http20Enabled"], True)
        self.assertIs(ep["remoteDebuggingEnabled"], False)
        self.assertEqual(ep["ftpsState"], "Disabled")
        y1 = self.site_config("Y1")
        self.assertNotIn("healthCheckPath", y1, "the health check needs Premium")
        self.assertEqual(y1["ftpsState"], "Disabled")


class BlobEvents(unittest.TestCase):
    def test_the_subscription_routes_receipts_to_the_queue_audit_receipt_reads(self):
        local = json.loads((ROOT / "local.settings.json").read_text())["Values"]["AZFN_BLOB_EVENTS"]
        container, queue = local.split("=")
        function = json.loads((ROOT / "functions/AuditReceipt/function.json").read_text())["bindings"][0]
        self.assertEqual(function["type"], "queueTrigger")
        self.assertEqual(function["queueName"], queue)

        (sub,) = resources_of("Microsoft.EventGrid/systemTopics/eventSubscriptions")
        props = sub.body.pairs["properties"].pairs
        flt = m.evaluate(T, props["filter"], {})
        self.assertEqual(flt["includedEventTypes"], ["Microsoft.Storage.BlobCreated"])
        self.assertEqual(flt["subjectBeginsWith"], f"/blobServices/default/containers/{container}/blobs/")
        self.assertEqual(m.evaluate(T, props["eventDeliverySchema"], {}), "EventGridSchema")
        delivery = props["deliveryWithResourceIdentity"].pairs
        destination = delivery["destination"].pairs
        self.assertEqual(m.evaluate(T, destination["endpointType"], {}), "StorageQueue")
        queue_ref = destination["properties"].pairs["queueName"]
        self.assertEqual(queue_ref, m.Prop(m.Ref("receiptEventsQueue"), ["name"]))
        self.assertEqual(body_name("receiptEventsQueue"), queue)
        self.assertEqual(body_name("receipts"), container)
        self.assertEqual(m.evaluate(T, delivery["identity"], {}), {"type": "SystemAssigned"})

    def test_the_topic_identity_may_only_send_to_that_queue(self):
        role = T.resources["storageEventsRole"].body.pairs
        self.assertEqual(role["scope"], m.Ref("receiptEventsQueue"))
        props = role["properties"].pairs
        self.assertEqual(props["principalId"], m.Prop(m.Ref("storageEvents"), ["identity", "principalId"]))
        self.assertEqual(m.evaluate(T, m.Prop(m.Ref("roles"), ["storageQueueDataMessageSender"]), {}),
                         ROLE_QUEUE_SENDER)
        self.assertIn("storageEventsRole", [getattr(d, "name", None) for d in T.resources["receiptEvents"].body.pairs["dependsOn"].items])

    def test_no_polling_blob_trigger_is_left_for_flex_to_refuse(self):
        for path in (ROOT / "functions").glob("*/function.json"):
            for binding in json.loads(path.read_text())["bindings"]:
                self.assertNotEqual(binding["type"].lower(), "blobtrigger", path)

    def test_every_queue_a_trigger_reads_is_deployed(self):
        declared = {body_name(r.symbol) for r in resources_of("Microsoft.Storage/storageAccounts/queueServices/queues")}
        for path in (ROOT / "functions").glob("*/function.json"):
            for binding in json.loads(path.read_text())["bindings"]:
                if binding["type"] == "queueTrigger" and not binding["queueName"].startswith("azfn-"):
                    # azfn-* are the durable engine's queues, which it creates itself.
                    self.assertIn(binding["queueName"], declared, path)


class OperationsData(unittest.TestCase):
    def test_diagnostic_settings_send_logs_to_the_workspace(self):
        settings = {r.body.pairs["scope"].name: r for r in resources_of("Microsoft.Insights/diagnosticSettings")}
        expected = {
            "site": ["FunctionAppLogs"],
            "blobService": ["StorageRead", "StorageWrite", "StorageDelete"],
            "queueService": ["StorageRead", "StorageWrite", "StorageDelete"],
            "tableService": ["StorageRead", "StorageWrite", "StorageDelete"],
            "serviceBus": ["OperationalLogs"],
        }
        self.assertEqual(set(settings), set(expected))
        for scope, categories in expected.items():
            props = settings[scope].body.pairs["properties"].pairs
            self.assertEqual(props["workspaceId"], m.Prop(m.Ref("workspace"), ["id"]), scope)
            logs = m.evaluate(T, props["logs"], {})
            self.assertEqual([l["category"] for l in logs], categories, scope)
            self.assertTrue(all(l["enabled"] for l in logs), scope)
        self.assertEqual(settings["serviceBus"].condition, m.Ref("deployServiceBus"))

    def test_service_bus_identity_only_receives(self):
        roles = [r for r in resources_of("Microsoft.Authorization/roleAssignments")
                 if r.body.pairs.get("scope") == m.Ref("orderEvents")]
        self.assertEqual(len(roles), 1)
        role_id = roles[0].body.pairs["properties"].pairs["roleDefinitionId"].args[1]
        self.assertEqual(m.evaluate(T, role_id, {}), ROLE_SB_RECEIVER)
        self.assertNotIn("serviceBusDataSender", m.evaluate(T, m.Ref("roles"), {}))


class TypeCheck(unittest.TestCase):
    text = (INFRA / "main.bicep").read_text()

    def problems(self, old: str, new: str) -> list[str]:
        self.assertTrue(old in self.text, f"main.bicep no longer has {old!r}: update the test")
        return check_types.check(self.text.replace(old, new, 1))[1]

    def test_main_bicep_passes(self):
        checked, problems, source = check_types.check()
        self.assertEqual(problems, [])
        self.assertEqual(checked, len(T.resources))
        self.assertEqual(len(source["commit"]), 40)

    def test_misspelt_and_unknown_properties(self):
        found = self.problems("allowSharedKeyAccess: false", "allowSharedkeyAccess: false")
        self.assertEqual(len(found), 1)
        self.assertIn("unknown property 'allowSharedkeyAccess' (did you mean 'allowSharedKeyAccess'?)", found[0])
        found = self.problems("queueName: receiptEventsQueue.name", "queue: receiptEventsQueue.name")
        self.assertIn("destination.properties: unknown property 'queue'", found[0])

    def test_wrong_values(self):
        self.assertIn("'yes' is not true or false", self.problems("httpsOnly: true", "httpsOnly: 'yes'")[0])
        self.assertIn("not one of the known values",
                      self.problems("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS12'")[0])
        self.assertIn("parameter rustLog is string, the property takes int",
                      self.problems("maximumInstanceCount: maximumInstanceCount", "maximumInstanceCount: rustLog")[0])
        self.assertIn("is not one of",
                      self.problems("endpointType: 'StorageQueue'", "endpointType: 'Queue'")[0])

    def test_read_only_and_required(self):
        self.assertIn("read-only", self.problems("    source: storage.id\n", "    source: storage.id\n    metricResourceId: 'x'\n")[0])
        found = self.problems("    principalId: storageEvents.identity.principalId\n", "")
        self.assertIn("required property 'principalId' is missing", found[0])


if __name__ == "__main__":
    unittest.main()
