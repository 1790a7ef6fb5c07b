// azfn: a secure, identity-based Linux Function App for a Rust custom handler.
//
// No account keys anywhere: the storage account refuses Shared Key, the app reaches storage (and
// optionally Service Bus) with a user-assigned managed identity holding least-privilege data roles,
// and Application Insights accepts only Entra ID authenticated telemetry.
// Plans: Flex Consumption (FC1, default; `custom` runtime 1.0 per the Flex stacks API),
// Elastic Premium (EP1-EP3) or Consumption (Y1, retiring 2028-09-30).

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Function App name; also the stem of the other resource names.')
@minLength(2)
@maxLength(40)
param appName string = 'azfn-${uniqueString(resourceGroup().id)}'

@description('Hosting plan: FC1 (Flex Consumption), EP1/EP2/EP3 (Elastic Premium) or Y1 (Consumption).')
@allowed(['FC1', 'EP1', 'EP2', 'EP3', 'Y1'])
param planType string = 'FC1'

@description('Storage redundancy. ZRS keeps the host state and the durable tables through a zone outage.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS'])
param storageSku string = 'Standard_ZRS'

@description('Flex Consumption: most instances to scale out to (40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory per instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Path the platform probes for health; an anonymous GET of the app.')
param healthCheckPath string = '/api/hello'

@description('RUST_LOG filter for the handler.')
param rustLog string = 'info'

@description('Elastic Premium / Consumption: URL of the deployment zip in blob storage (see docs/deploy.md); empty until the first deployment.')
param packageUri string = ''

@description('Also deploy a Service Bus namespace with the queue order-events for the OrderEvents function.')
param deployServiceBus bool = false

var isFlex = planType == 'FC1'
var names = {
  storage: take('st${toLower(replace(appName, '-', ''))}${uniqueString(resourceGroup().id)}', 24)
  identity: 'id-${appName}'
  plan: 'plan-${appName}'
  workspace: 'log-${appName}'
  insights: 'appi-${appName}'
  serviceBus: 'sb-${appName}'
}
var deploymentContainer = 'deployments'
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
}
var planSku = {
  FC1: { name: 'FC1', tier: 'FlexConsumption' }
  EP1: { name: 'EP1', tier: 'ElasticPremium' }
  EP2: { name: 'EP2', tier: 'ElasticPremium' }
  EP3: { name: 'EP3', tier: 'ElasticPremium' }
  Y1: { name: 'Y1', tier: 'Dynamic' }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: names.workspace
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: names.insights
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: no VNet in this template; the account refuses Shared Key and is reached only with Entra ID identities holding data roles
  // checkov:skip=CKV_AZURE_59: the Functions platform reaches the account over its public endpoint unless the app is VNet-integrated with private endpoints (out of scope here)
  // checkov:skip=CKV_AZURE_206: ZRS (the default) replicates across zones; geo-replication is a cost choice left to the storageSku parameter
  // checkov:skip=CKV_AZURE_43: the name is computed with uniqueString and take(…, 24), which checkov cannot evaluate
  name: names.storage
  location: location
  kind: 'StorageV2'
  sku: { name: storageSku }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
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

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: { publicAccess: 'None' }
}

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

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ordersTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'orders'
}

// The triggers, the output bindings and the durable engine use blobs, queues and tables.
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

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = if (deployServiceBus) {
  name: names.serviceBus
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource orderEvents 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = if (deployServiceBus) {
  parent: serviceBus
  name: 'order-events'
  properties: {
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}

resource serviceBusRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in (deployServiceBus ? [roles.serviceBusDataReceiver, roles.serviceBusDataSender] : []): {
    name: guid(resourceGroup().id, names.serviceBus, identity.id, role)
    scope: serviceBus
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is a property of dedicated and premium plans, not of Flex Consumption or Consumption
  name: names.plan
  location: location
  kind: isFlex ? 'functionapp' : (planType == 'Y1' ? 'functionapp' : 'elastic')
  sku: planSku[planType]
  properties: {
    reserved: true
  }
}

// Settings the handler and the host read. Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION: there the runtime comes from functionAppConfig.runtime.
var commonSettings = [
  { name: 'AzureWebJobsStorage__accountName', value: storage.name }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
  { name: 'RUST_LOG', value: rustLog }
]
var serviceBusSettingList = [
  { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: '${names.serviceBus}.servicebus.windows.net' }
  { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
  { name: 'ServiceBusConnection__clientId', value: identity.properties.clientId }
]
// Without a namespace, OrderEvents is disabled instead of failing its listener at every start.
var serviceBusSettings = deployServiceBus ? serviceBusSettingList : [{ name: 'AzureWebJobs.OrderEvents.Disabled', value: 'true' }]
var classicSettingList = [
  { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
  { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'custom' }
  { name: 'WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID', value: identity.id }
]
var packageSettings = empty(packageUri) ? [] : [{ name: 'WEBSITE_RUN_FROM_PACKAGE', value: packageUri }]
var classicSettings = isFlex ? [] : concat(classicSettingList, packageSettings)

// Flex Consumption's deployment storage, scale and runtime (the stacks API lists `custom` 1.0 for FC1).
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
  }
  runtime: {
    name: 'custom'
    version: '1.0'
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_212: a minimum instance count does not apply to Flex Consumption or Consumption (they scale from zero); on Elastic Premium set one for production
  // checkov:skip=CKV_AZURE_17: client certificates would stop the platform's health probe and anonymous routes; callers authenticate with function keys or Entra ID
  // checkov:skip=CKV_AZURE_222: public network access is needed for the HTTP triggers; restrict it with access restrictions or private endpoints per environment
  name: appName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      healthCheckPath: healthCheckPath
      remoteDebuggingEnabled: false
      linuxFxVersion: isFlex ? null : ''
      appSettings: concat(commonSettings, serviceBusSettings, classicSettings)
    }
    functionAppConfig: isFlex ? flexConfig : null
  }
  dependsOn: [storageRoles, insightsRole]
}

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

@description('The Function App name.')
output functionAppName string = site.name

@description('The app\'s default host name, e.g. azfn-xyz.azurewebsites.net.')
output defaultHostName string = site.properties.defaultHostName

@description('The deployment container (Elastic Premium / Consumption: upload the zip here).')
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
