// The Assistants API on a Linux Flex Consumption function app: storage reached only by managed
// identity, API keys in Key Vault, telemetry to Application Insights without local keys, and
// (unless an existing endpoint is given) an Azure OpenAI account for runs that takes no keys.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region for every resource; it must offer Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user: granted the API key secret and the data, for operations. Empty grants nothing.')
param principalId string = ''

@secure()
@description('The API keys, comma-separated. azd generates one on first provision and reads it back from Key Vault later (see main.parameters.json).')
param assistantsApiKeys string

@description('Most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP invocations per instance. Python apps on Flex default to 1, which would make every open SSE stream hold a whole instance.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

// The model runs call. By default the deployment creates an Azure OpenAI account with one model
// deployment, which the app calls as its identity; a base URL here uses that endpoint instead.
@description('OpenAI-compatible base URL of an existing model endpoint (Azure OpenAI: https://<resource>.openai.azure.com/openai/v1/). Empty creates an Azure OpenAI account and deployment for runs.')
param modelBaseUrl string = ''

@secure()
@description('Key of that existing endpoint, kept in Key Vault. Empty: none (an Azure endpoint is called as the app identity, which then needs Cognitive Services OpenAI User on it). Unused when the account is created here.')
param modelApiKey string = ''

@description('Region of the created Azure OpenAI account; empty is the app region. It must offer the model in that SKU.')
param modelLocation string = ''

@description('Model of the created deployment.')
param modelName string = 'gpt-4o-mini'

@description('Version of that model.')
param modelVersion string = '2024-07-18'

@description('Name of the created deployment: the `model` every assistant names.')
param modelDeploymentName string = 'gpt-4o-mini'

@description('SKU of the created deployment.')
param modelSkuName string = 'GlobalStandard'

@description('Capacity of the created deployment, in thousands of tokens per minute (quota permitting).')
@minValue(1)
param modelCapacity int = 30

@description('Embeddings model of the created account (vector stores); its deployment is named after it.')
param embeddingsModelName string = 'text-embedding-3-large'

@description('Version of that model.')
param embeddingsModelVersion string = '1'

@description('Capacity of the embeddings deployment, in thousands of tokens per minute (quota permitting).')
@minValue(1)
param embeddingsCapacity int = 50

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-api-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var apiKeysSecretName = 'assistants-api-keys'
var runsQueueName = 'runs'
var ingestQueueName = 'ingestion'
var filesContainerName = 'files' // the app's own name for it (ASSISTANTS_TABLE_PREFIX is unset in Azure)
var createModel = empty(modelBaseUrl)
var modelAccountName = 'oai-${resourceToken}'
var modelApiKeySecretName = 'assistants-model-api-key'
var storeModelApiKey = (!createModel) && !empty(modelApiKey)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    runsQueueName: runsQueueName
    ingestQueueName: ingestQueueName
    filesContainerName: filesContainerName
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    secretName: apiKeysSecretName
    secretValue: assistantsApiKeys
    modelApiKeySecretName: modelApiKeySecretName
    modelApiKey: storeModelApiKey ? modelApiKey : ''
  }
}

module model 'modules/openai.bicep' = if (createModel) {
  name: 'model'
  scope: rg
  params: {
    name: modelAccountName
    location: empty(modelLocation) ? location : modelLocation
    tags: tags
    deploymentName: modelDeploymentName
    modelName: modelName
    modelVersion: modelVersion
    skuName: modelSkuName
    capacity: modelCapacity
    embeddingsDeploymentName: embeddingsModelName
    embeddingsModelName: embeddingsModelName
    embeddingsModelVersion: embeddingsModelVersion
    embeddingsCapacity: embeddingsCapacity
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    storageAccountName: storage.outputs.name
    filesContainerName: filesContainerName
    keyVaultName: vault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    modelAccountName: modelAccountName
    grantModelAccount: createModel
  }
  dependsOn: [
    model
  ]
}

// code_interpreter's sandbox in Azure (ASSISTANTS_SANDBOX_ENDPOINT): a dynamic sessions pool.
module sessions 'modules/sessions.bicep' = {
  name: 'sessions'
  scope: rg
  params: {
    name: 'sp-${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
  }
}

module api 'modules/functions.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: vault.outputs.name
    apiKeysSecretName: apiKeysSecretName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    runsQueueName: runsQueueName
    ingestQueueName: ingestQueueName
    embeddingsModel: createModel ? model!.outputs.embeddingsDeploymentName : embeddingsModelName
    modelBaseUrl: createModel ? model!.outputs.baseUrl : modelBaseUrl
    modelApiKeySecretName: storeModelApiKey ? modelApiKeySecretName : ''
    sandboxEndpoint: sessions.outputs.poolManagementEndpoint
  }
  dependsOn: [
    roles
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output ASSISTANTS_ENDPOINT string = api.outputs.endpoint
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output ASSISTANTS_API_KEYS_SECRET_NAME string = apiKeysSecretName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
// Not named after the inputs (ASSISTANTS_MODEL_BASE_URL in main.parameters.json): azd saves
// outputs into the environment, and the created endpoint read back as an input would turn the
// next provision into "use an existing endpoint".
output ASSISTANTS_MODEL_ENDPOINT string = createModel ? model!.outputs.baseUrl : modelBaseUrl
output ASSISTANTS_MODEL_DEPLOYMENT string = createModel ? model!.outputs.deploymentName : ''
