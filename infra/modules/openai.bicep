// The model runs call, when the deployment creates it: an Azure OpenAI (AIServices) account that
// takes no keys, with one model deployment. The app calls it as its identity (Cognitive Services
// OpenAI User, roles.bicep), at the account's OpenAI-compatible v1 endpoint.
param name string
param location string
param tags object

@description('Name of the deployment: the `model` of every assistant.')
param deploymentName string
param modelName string
param modelVersion string

@description('Name of the embeddings deployment (ASSISTANTS_EMBEDDINGS_MODEL): vector stores embed with it.')
param embeddingsDeploymentName string
param embeddingsModelName string
param embeddingsModelVersion string

@description('Capacity of the embeddings deployment, in thousands of tokens per minute.')
param embeddingsCapacity int

@description('Deployment SKU, such as GlobalStandard or Standard.')
param skuName string

@description('Capacity of the deployment, in thousands of tokens per minute.')
param capacity int

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'AIServices'
  sku: {
    name: 'S0'
  }
  properties: {
    // The account's own host name (<name>.openai.azure.com), which Entra ID sign-in requires.
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource deployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: skuName
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
  }
}

// Beside the chat model, in the same account. An account takes one deployment change at a time.
resource embeddings 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: embeddingsDeploymentName
  sku: {
    name: skuName
    capacity: embeddingsCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: embeddingsModelName
      version: embeddingsModelVersion
    }
  }
  dependsOn: [
    deployment
  ]
}

// https://<name>.openai.azure.com/, with its trailing slash as Azure returns it.
var openAiEndpoint = account.properties.endpoints['OpenAI Language Model Instance API']

output name string = account.name
@description('The OpenAI-compatible v1 base URL (ASSISTANTS_MODEL_BASE_URL): https://<name>.openai.azure.com/openai/v1/.')
output baseUrl string = endsWith(openAiEndpoint, '/') ? '${openAiEndpoint}openai/v1/' : '${openAiEndpoint}/openai/v1/'
output deploymentName string = deployment.name
output embeddingsDeploymentName string = embeddings.name
