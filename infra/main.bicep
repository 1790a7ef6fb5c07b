// azfn: a keyless Linux Function App for a Rust custom handler.
//
// - Hosting plan: Flex Consumption (FC1, default, runtime `custom` 1.0), Elastic Premium (EP1-EP3)
//   or Linux Consumption (Y1, retiring 2028-09-30). See docs/adr/0002-hosting-plan.md.
// - No keys anywhere: the storage account refuses Shared Key, Service Bus refuses SAS, Application
//   Insights accepts only Entra ID telemetry. The app reaches all three with one user-assigned
//   managed identity that holds data roles scoped to those resources only.
// - Checked offline by infra/scan.sh (checkov + the checks in infra/checks/). Every suppressed
//   check is marked inline below with its reason.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Function App name (globally unique); also the stem of the other resource names.')
@minLength(2)
@maxLength(40)
param appName string = 'azfn-${uniqueString(resourceGroup().id)}'

@description('Hosting plan: FC1 (Flex Consumption), EP1/EP2/EP3 (Elastic Premium) or Y1 (Linux Consumption).')
@allowed(['FC1', 'EP1', 'EP2', 'EP3', 'Y1'])
param planType string = 'FC1'

@description('Spread the plan over availability zones, in regions that have them. Needs storageSku Standard_ZRS or Standard_GZRS (refused otherwise) and FC1 or EP (Y1 has no zones). Cost: on EP at least two instances are always on and billed; on FC1 the platform keeps at least two always-ready instances per scale group (http, and each other function or group), billed as always-ready instances.')
param zoneRedundant bool = false

@description('Storage redundancy. ZRS keeps the host state and the durable tables through a zone outage and is required with zoneRedundant; use Standard_LRS in a region without availability zones.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS'])
param storageSku string = 'Standard_ZRS'

@description('Flex Consumption: most instances to scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory of each instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Flex Consumption: instances kept warm for the HTTP functions (0 scales to zero).')
@minValue(0)
param alwaysReadyHttpInstances int = 0

@description('Elastic Premium only (Flex and Consumption have no health check): path the platform probes, an anonymous GET route of the app.')
param healthCheckPath string = '/api/hello'

@description('RUST_LOG filter for the handler.')
param rustLog string = 'info'

@description('Where the handler exports its OpenTelemetry traces: azuremonitor (the Application Insights resource below, keyless through the app identity, which holds Monitoring Metrics Publisher on it) or none.')
@allowed(['azuremonitor', 'none'])
param traceExporter string = 'azuremonitor'

@description('Elastic Premium / Consumption: URL of the package zip in the deployment container (see docs/deploy.md); empty until the first deployment.')
param packageUri string = ''

@description('Also deploy a Service Bus namespace with the queue order-events for the OrderEvents function.')
param deployServiceBus bool = false

@description('Days the Log Analytics workspace keeps the app, storage and Service Bus logs (diagnostic settings) and the telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Optional: object ID of the user or service principal that uploads packages (Elastic Premium / Consumption); gets Storage Blob Data Contributor on the deployment container only.')
param deployerPrincipalId string = ''

@description('Kind of principal deployerPrincipalId is.')
@allowed(['User', 'ServicePrincipal', 'Group'])
param deployerPrincipalType string = 'User'

@description('Tags for every resource.')
param tags object = {}

var isFlex = planType == 'FC1'
var isPremium = startsWith(planType, 'EP')
var isConsumption = planType == 'Y1'

// Zone redundancy keeps the app up through a zone outage only if its host storage survives it too:
// Microsoft's reliability guide for Functions requires ZRS host storage for a zone-redundant plan
// (GZRS is ZRS in the primary region). Other combinations are refused with a message. Bicep's fail()
// would read better, but checkov's Bicep parser (pycep 0.5.1, and 0.7.1) cannot parse it; instead
// the refusing branch reads a property, named for the message, of an empty object. ARM evaluates
// only the branch a condition selects, and reports "The language expression property '<message>'
// doesn't exist". infra/tests/test_main_bicep.py evaluates this for every combination.
var zoneStorage = contains(['Standard_ZRS', 'Standard_GZRS'], storageSku)
var zoneRefusal = any(json('{}'))
var zoneRedundancy = zoneRedundant ? (isConsumption ? zoneRefusal['zoneRedundant=true is not available with planType Y1 (Linux Consumption has no zone redundancy); choose FC1 or EP1-EP3'] : (zoneStorage ? true : zoneRefusal['zoneRedundant=true needs storageSku Standard_ZRS or Standard_GZRS: a zone-redundant plan on locally or geo-redundant storage stops when its zone does'])) : false

var names = {
  storage: 'st${uniqueString(resourceGroup().id, appName)}'
  identity: 'id-${appName}'
  plan: 'plan-${appName}'
  workspace: 'log-${appName}'
  insights: 'appi-${appName}'
  serviceBus: 'sb-${appName}'
}
var deploymentContainer = 'deployments'

// Built-in role definition IDs (docs: role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
}

// Elastic Premium keeps `capacity` instances always on; zone redundancy needs at least two.
var premiumCapacity = zoneRedundancy ? 2 : 1
var planSkus = {
  FC1: { name: 'FC1', tier: 'FlexConsumption' }
  EP1: { name: 'EP1', tier: 'ElasticPremium', family: 'EP', capacity: premiumCapacity }
  EP2: { name: 'EP2', tier: 'ElasticPremium', family: 'EP', capacity: premiumCapacity }
  EP3: { name: 'EP3', tier: 'ElasticPremium', family: 'EP', capacity: premiumCapacity }
  Y1: { name: 'Y1', tier: 'Dynamic' }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------
// Monitoring: workspace-based Application Insights that takes only Entra ID authenticated telemetry.

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: names.workspace
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: logRetentionDays
    features: {
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: names.insights
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------------------
// Storage: host state, triggers, bindings, durable task hub and the deployment package.

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the app is not VNet-integrated here, so its hosts reach storage over the public endpoint and Functions is not a trusted service for the storage firewall; access needs Entra ID and a data role (Shared Key is off)
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35; lock the account down with VNet integration and private endpoints (Flex or EP) per environment
  // checkov:skip=CKV_AZURE_206: ZRS (the default) already replicates across zones; geo-replication is a cost choice left to the storageSku parameter
  // checkov:skip=CKV_AZURE_43: the name is 'st' + uniqueString(...), 15 lowercase letters and digits, valid by construction; checkov cannot evaluate Bicep functions
  name: names.storage
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: storageSku }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

// Flex Consumption keeps the deployed package here; Elastic Premium and Consumption run from a zip here.
resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: { publicAccess: 'None' }
}

// The example app's storage: ProcessOrder writes receipts/, AuditReceipt watches it; CreateOrder
// queues to `orders`; the `orders` table holds the order rows.
resource receipts 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'receipts'
  properties: { publicAccess: 'None' }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ordersQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'orders'
}

// Event Grid puts a BlobCreated event here for every receipt written; AuditReceipt reads them.
resource receiptEventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'receipt-events'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ordersTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'orders'
}

// ---------------------------------------------------------------------------------------------
// Least-privilege data roles for the app's identity, each scoped to one resource.

// Blob Data Owner is the documented minimum for the host's AzureWebJobsStorage connection (and
// the Flex deployment container); the queue and table roles serve the triggers, the bindings and
// the durable engine.
resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(storage.id, identity.id, role)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource insightsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Whoever uploads Elastic Premium / Consumption packages may write to the deployment container, nothing more.
resource deployerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(deployments.id, deployerPrincipalId, roles.storageBlobDataContributor)
  scope: deployments
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

// ---------------------------------------------------------------------------------------------
// Blob events, keyless, on every plan (docs/adr/0004-blob-events.md): the storage account's Event
// Grid system topic delivers each BlobCreated event in receipts/ to the receipt-events queue with
// its own managed identity, which may only send messages to that queue. AuditReceipt is a queue
// trigger there. (Flex Consumption has no polling blob trigger; the Event Grid blob trigger would
// need the blobs_extension key in the subscription's URL and a second deployment after the code.)

resource storageEvents 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: 'evgt-${appName}'
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource storageEventsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(receiptEventsQueue.id, storageEvents.id, roles.storageQueueDataMessageSender)
  scope: receiptEventsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: storageEvents.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource receiptEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: storageEvents
  name: 'receipts-to-queue'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/receipts/blobs/'
    }
    deliveryWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: storage.id
          queueName: receiptEventsQueue.name
          // -1: messages never expire; AuditReceipt's poison queue keeps what fails.
          queueMessageTimeToLiveInSeconds: -1
        }
      }
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
  dependsOn: [storageEventsRole]
}

// ---------------------------------------------------------------------------------------------
// Optional Service Bus for the OrderEvents function: SAS keys off, roles on the one queue.

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' = if (deployServiceBus) {
  name: names.serviceBus
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard' }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource orderEvents 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = if (deployServiceBus) {
  parent: serviceBus
  name: 'order-events'
  properties: {
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}

// The app only receives from order-events: Data Receiver, on that queue only. The scale controller
// (Flex, Consumption) and runtime scale monitoring (EP) read the queue's message count with the
// same identity; that read needs Manage rights, and without them the extension falls back to the
// age of the first message, which still scales but more coarsely (docs/deploy.md).
resource serviceBusRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (deployServiceBus) {
  name: guid(resourceGroup().id, names.serviceBus, 'order-events', identity.id, roles.serviceBusDataReceiver)
  scope: orderEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------
// The plan and the Function App.

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is opt-in through the zoneRedundant parameter: Y1 has none, Flex offers it only in some regions, and on EP it needs two always-on instances; off by default so the first deployment works in any region
  name: names.plan
  location: location
  tags: tags
  kind: isPremium ? 'elastic' : 'functionapp'
  sku: planSkus[planType]
  properties: {
    reserved: true
    zoneRedundant: zoneRedundancy
    maximumElasticWorkerCount: isPremium ? 20 : null
  }
}

// App settings, one `{ name: ..., value: ... }` per line (tests/infra_settings.rs reads them).
// What the host and the handler read, on every plan:
var commonSettings = [
  { name: 'AzureWebJobsStorage__accountName', value: storage.name }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
  { name: 'RUST_LOG', value: rustLog }
  // The handler's spans (invocations, episodes, activities, entity operations) to the same
  // Application Insights, with the identity above (docs/telemetry.md).
  { name: 'OTEL_TRACES_EXPORTER', value: traceExporter }
  // glibc malloc: allocations of 128 KiB and more are mapped and returned to the system when freed,
  // so a large orchestration value does not stay resident after it is done (docs/reliability.md).
  { name: 'MALLOC_MMAP_THRESHOLD_', value: '131072' }
]

// The OrderEvents function's Service Bus connection, or, without a namespace, the function disabled
// so that its listener does not fail at every start.
var serviceBusSettingList = [
  { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: '${names.serviceBus}.servicebus.windows.net' }
  { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
  { name: 'ServiceBusConnection__clientId', value: identity.properties.clientId }
]
var noServiceBusSettings = [
  { name: 'AzureWebJobs.OrderEvents.Disabled', value: 'true' }
]
var serviceBusSettings = deployServiceBus ? serviceBusSettingList : noServiceBusSettings

// Flex Consumption takes the runtime from functionAppConfig.runtime and rejects
// FUNCTIONS_WORKER_RUNTIME; it needs no setting of its own here.
var flexSettings = []

// Elastic Premium and Consumption: the "Custom Handler" stack's settings, and the app runs from a
// package blob read with the managed identity (there is no Azure Files content share: it would
// need an account key).
var classicSettings = [
  { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
  { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'custom' }
  { name: 'WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID', value: identity.id }
]
var packageSettings = empty(packageUri) ? [] : [
  { name: 'WEBSITE_RUN_FROM_PACKAGE', value: packageUri }
]

var planSettings = isFlex ? flexSettings : concat(classicSettings, packageSettings)

// Flex Consumption's deployment storage, scale and runtime (the Flex stack for `custom` lists
// runtime custom 1.0, 512/2048/4096 MB and 40-1000 instances).
var flexConfig = {
  deployment: {
    storage: {
      type: 'blobContainer'
      value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
      authentication: {
        type: 'UserAssignedIdentity'
        userAssignedIdentityResourceId: identity.id
      }
    }
  }
  scaleAndConcurrency: {
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReady: alwaysReadyHttpInstances > 0 ? [{ name: 'http', instanceCount: alwaysReadyHttpInstances }] : []
  }
  runtime: {
    name: 'custom'
    version: '1.0'
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_78: ftpsState is 'Disabled' on EP and Y1; Flex Consumption rejects the property (ARM error 51021), so it is left out there; FTP credentials are refused on every plan by the ftp basicPublishingCredentialsPolicies below
  // checkov:skip=CKV_AZURE_212: numberOfWorkers sizes a site on a dedicated App Service plan; Functions plans scale by events (Flex maximumInstanceCount and alwaysReady, EP elastic workers)
  // checkov:skip=CKV_AZURE_17: client certificates (mutual TLS) would shut out the anonymous Hello route and ordinary HTTP clients; callers of the other routes authenticate with function keys
  // checkov:skip=CKV_AZURE_67: HTTP/2 is on (http20Enabled true) for EP and Y1; on Flex the property is left out, as its portal does not offer it, and checkov cannot see through the condition
  // checkov:skip=CKV_AZURE_18: same as CKV_AZURE_67
  // checkov:skip=CKV_AZURE_72: remote debugging is off by default on every plan and set false explicitly on EP and Y1; left out on Flex, which does not offer it; checkov cannot see through the condition
  // checkov:skip=CKV_AZURE_155: same as CKV_AZURE_72
  // checkov:skip=CKV_AZURE_222: the HTTP triggers are public endpoints; restrict them per environment with access restrictions or private endpoints
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // Flex rejects ftpsState and linuxFxVersion (ARM error 51021). Its portal offers neither
      // HTTP/2, remote debugging nor a health check, and the health check needs Premium; null
      // leaves a property out of the request, so each is sent only where it belongs.
      ftpsState: isFlex ? null : 'Disabled'
      linuxFxVersion: isFlex ? null : ''
      http20Enabled: isFlex ? null : true
      remoteDebuggingEnabled: isFlex ? null : false
      healthCheckPath: isPremium ? healthCheckPath : null
      appSettings: concat(commonSettings, serviceBusSettings, planSettings)
    }
    functionAppConfig: isFlex ? flexConfig : null
  }
  // The host must be able to reach storage and Application Insights when it first starts.
  dependsOn: [storageRoles, insightsRole, serviceBusRole, deployments, ordersQueue, ordersTable, receipts, receiptEvents]
}

// No publishing with user names and passwords: deployments authenticate with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

// ---------------------------------------------------------------------------------------------
// Diagnostic settings: the host's and handler's logs, every storage request, and Service Bus
// operations go to the Log Analytics workspace (docs/deploy.md has the queries). Storage logs
// are set on each service; the account itself has only metrics.

resource siteLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-workspace'
  scope: site
  properties: {
    workspaceId: workspace.id
    logs: [{ category: 'FunctionAppLogs', enabled: true }]
  }
}

var storageLogs = [
  { category: 'StorageRead', enabled: true }
  { category: 'StorageWrite', enabled: true }
  { category: 'StorageDelete', enabled: true }
]

resource blobLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-workspace'
  scope: blobService
  properties: {
    workspaceId: workspace.id
    logs: storageLogs
  }
}

resource queueLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-workspace'
  scope: queueService
  properties: {
    workspaceId: workspace.id
    logs: storageLogs
  }
}

resource tableLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-workspace'
  scope: tableService
  properties: {
    workspaceId: workspace.id
    logs: storageLogs
  }
}

resource serviceBusLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (deployServiceBus) {
  name: 'to-workspace'
  scope: serviceBus
  properties: {
    workspaceId: workspace.id
    logs: [{ category: 'OperationalLogs', enabled: true }]
  }
}

@description('The Function App name.')
output functionAppName string = site.name

@description('The app\'s default host name, e.g. azfn-xyz.azurewebsites.net.')
output defaultHostName string = site.properties.defaultHostName

@description('The storage account that holds the host state and the deployment container.')
output storageAccountName string = storage.name

@description('The deployment container. Elastic Premium / Consumption: upload the package zip here.')
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
