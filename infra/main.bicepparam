using './main.bicep'

// Flex Consumption is the default; EP1 for always-warm instances, Y1 for the legacy Consumption plan.
param planType = 'FC1'
param rustLog = 'info'
param deployServiceBus = false
