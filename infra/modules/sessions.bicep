// code_interpreter in Azure: a Container Apps dynamic sessions pool of Python sessions (each a
// Hyper-V isolated sandbox, no outbound network), which the app's identity may run code in.
param name string
param location string
param tags object
param identityPrincipalId string

@description('Seconds a session lives without a call before the pool ends it (300-3600).')
@minValue(300)
@maxValue(3600)
param cooldownSeconds int = 3600

@description('Sessions the pool holds at once: one per thread with recent code_interpreter use.')
@minValue(1)
@maxValue(600)
param maxConcurrentSessions int = 100

// The built-in "Azure ContainerApps Session Executor" role: execute code and manage files in the pool's sessions.
var sessionExecutor = '0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0'

resource pool 'Microsoft.App/sessionPools@2025-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    containerType: 'PythonLTS'
    poolManagementType: 'Dynamic'
    dynamicPoolConfiguration: {
      lifecycleConfiguration: {
        lifecycleType: 'Timed'
        cooldownPeriodInSeconds: cooldownSeconds
      }
    }
    scaleConfiguration: {
      maxConcurrentSessions: maxConcurrentSessions
    }
    sessionNetworkConfiguration: {
      status: 'EgressDisabled'
    }
  }
}

resource appSessions 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pool.id, identityPrincipalId, sessionExecutor)
  scope: pool
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sessionExecutor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = pool.name
output poolManagementEndpoint string = pool.properties.poolManagementEndpoint
