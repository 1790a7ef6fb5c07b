// __APP__: a keyless Linux Function App on Flex Consumption for a Rust custom handler built with
// azfn (written by `cargo azfn init`; yours to change).
//
// - Flex Consumption (FC1), runtime `custom` 1.0, scaling from zero.
// - No keys anywhere: the storage account refuses Shared Key and Application Insights accepts only
//   Entra ID telemetry. The app reaches both with one user-assigned managed identity that holds
//   data roles scoped to those resources only.
// - Deployed by `azd up` (azure.yaml, infra/main.parameters.json) or by
//   `az deployment group create -g <group> -f infra/main.bicep -p environmentName=<env>`.
// - The app's own queues, tables and blob containers: the three lists under "The app's own
//   storage" below. The durable task hub (tables and queues named `azfn...`) creates its own.

targetScope = 'resourceGroup'

@description('Name of the environment (azd sets it from AZURE_ENV_NAME); tags every resource and names them.')
@minLength(1)
@maxLength(40)
param environmentName string

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Function App name (globally unique).')
@minLength(2)
@maxLength(60)
param appName string = '__APP__-${uniqueString(resourceGroup().id, environmentName)}'

@description('Storage redundancy: Standard_LRS, or Standard_ZRS in a region with availability zones.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS'])
param storageSku string = 'Standard_LRS'

@description('Most instances to scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('RUST_LOG filter for the handler.')
param rustLog string = 'info'

@description('Days the Log Analytics workspace keeps the logs and the telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ---------------------------------------------------------------------------------------------
// The app's own storage: add the names your functions use (queue triggers and outputs, table
// outputs, blob paths), lowercase. They are created with the account; the app's identity may read
// and write them.
var appQueues = []
var appTables = []
var appContainers = []

var tags = { 'azd-env-name': environmentName }
var names = {
  storage: 'st${uniqueString(resourceGroup().id, appName)}'
  identity: 'id-${appName}'
  plan: 'plan-${appName}'
  workspace: 'log-${appName}'
  insights: 'appi-${appName}'
}
var deploymentContainer = 'deployments'

// Built-in role definition IDs (docs: role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
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
// Storage: host state, triggers, bindings, the durable task hub and the deployment package.

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the app is not VNet-integrated here, so its hosts reach storage over the public endpoint and Functions is not a trusted service for the storage firewall; access needs Entra ID and a data role (Shared Key is off)
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35; lock the account down with VNet integration and private endpoints per environment
  // checkov:skip=CKV_AZURE_206: geo-replication is a cost choice left to the storageSku parameter
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

// Flex Consumption keeps the deployed package here.
resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: { publicAccess: 'None' }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for name in appContainers: {
    parent: blobService
    name: name
    properties: { publicAccess: 'None' }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for name in appQueues: {
    parent: queueService
    name: name
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for name in appTables: {
    parent: tableService
    name: name
  }
]

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

// ---------------------------------------------------------------------------------------------
// The plan and the Function App.

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption is offered only in some regions and needs ZRS storage; off so that the first deployment works in any region
  name: names.plan
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: {
    reserved: true
  }
}

// App settings, one `{ name: ..., value: ... }` per line. Flex Consumption takes the runtime from
// functionAppConfig.runtime and rejects FUNCTIONS_WORKER_RUNTIME.
var appSettings = [
  { name: 'AzureWebJobsStorage__accountName', value: storage.name }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
  { name: 'RUST_LOG', value: rustLog }
  // The handler's spans to the same Application Insights, with the identity above.
  { name: 'OTEL_TRACES_EXPORTER', value: 'azuremonitor' }
]

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_78: Flex Consumption rejects ftpsState (ARM error 51021); FTP credentials are refused by the ftp basicPublishingCredentialsPolicies below
  // checkov:skip=CKV_AZURE_212: numberOfWorkers sizes a site on a dedicated App Service plan; Flex Consumption scales by events up to maximumInstanceCount
  // checkov:skip=CKV_AZURE_17: client certificates (mutual TLS) would shut out ordinary HTTP clients; callers authenticate with function keys
  // checkov:skip=CKV_AZURE_67: Flex Consumption does not offer the HTTP/2 setting
  // checkov:skip=CKV_AZURE_18: same as CKV_AZURE_67
  // checkov:skip=CKV_AZURE_72: remote debugging is off by default and Flex Consumption does not offer it
  // checkov:skip=CKV_AZURE_155: same as CKV_AZURE_72
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no health check (it needs Elastic Premium or a dedicated plan); the platform restarts an instance whose handler does not listen within 60 s
  // checkov:skip=CKV_AZURE_222: the HTTP triggers are public endpoints; restrict them per environment with access restrictions or private endpoints
  name: appName
  location: location
  // azd deploys the service `api` of azure.yaml to the site with this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
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
      appSettings: appSettings
    }
    functionAppConfig: {
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
  }
  // The host must be able to reach storage and Application Insights when it first starts.
  dependsOn: [storageRoles, insightsRole, deployments, queues, tables, containers]
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
// Diagnostic settings: the host's and handler's logs and every storage request go to the Log
// Analytics workspace.

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

// azd writes these into its environment (.azure/<env>/.env); the deploy workflow reads the first two.
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = site.name
output SERVICE_API_NAME string = site.name
output AZURE_FUNCTION_APP_URL string = 'https://${site.properties.defaultHostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
