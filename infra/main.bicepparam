using './main.bicep'

// Flex Consumption is the default (docs/adr/0002-hosting-plan.md). EP1-EP3: Elastic Premium,
// always warm; Y1: Linux Consumption, retiring 2028-09-30. Override on the command line, e.g.
// `-p planType=EP1`.
param planType = 'FC1'

// Regions without availability zones need Standard_LRS.
param storageSku = 'Standard_ZRS'

// true: a Service Bus namespace with the queue order-events for the OrderEvents function.
param deployServiceBus = false

param rustLog = 'info'

// The handler's traces: azuremonitor (to the deployment's Application Insights, keyless) or none.
param traceExporter = 'azuremonitor'

// Elastic Premium / Consumption only (docs/deploy.md): the package blob the app runs from, and who
// may upload it. Listed here so that `-p name=value` on the command line can override them.
param packageUri = ''
param deployerPrincipalId = ''
