// The function app: Linux Flex Consumption, Python 3.11, HTTPS only, TLS 1.2 at least. It
// reaches storage, Key Vault, Application Insights and the deployment's own Azure OpenAI account
// as its user-assigned identity.
param name string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param keyVaultName string
param apiKeysSecretName string
param maximumInstanceCount int
param instanceMemoryMB int
param httpPerInstanceConcurrency int
param runsQueueName string
param ingestQueueName string

@description('Embeddings model (deployment) vector stores embed with (ASSISTANTS_EMBEDDINGS_MODEL).')
param embeddingsModel string

@description('OpenAI-compatible base URL of the model runs call (ASSISTANTS_MODEL_BASE_URL).')
param modelBaseUrl string

@description('Key Vault secret holding the key of that endpoint; empty when it takes none (an Azure endpoint is then called as the identity).')
param modelApiKeySecretName string

@description('Management endpoint of the code_interpreter session pool (ASSISTANTS_SANDBOX_ENDPOINT).')
param sandboxEndpoint string

var modelApiKeyReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${modelApiKeySecretName})'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            // Python apps on Flex default to 1: every open SSE stream would hold a whole instance.
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: {
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
      AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
      AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      PYTHON_ENABLE_OPENTELEMETRY: 'true'
      // HTTP streams (FastAPI types) need indexing at worker init on Python 3.11.
      PYTHON_ENABLE_INIT_INDEXING: '1'
      AZURE_CLIENT_ID: identityClientId
      ASSISTANTS_STORAGE_ACCOUNT_URL: storage.properties.primaryEndpoints.table
      ASSISTANTS_RUNS_QUEUE: runsQueueName
      ASSISTANTS_INGEST_QUEUE: ingestQueueName
      ASSISTANTS_EMBEDDINGS_MODEL: embeddingsModel
      // The runs queue trigger's connection, "ASSISTANTS_STORAGE_CONNECTION_STRING", by identity.
      // No plain ASSISTANTS_STORAGE_CONNECTION_STRING here: a plain value is read as a connection
      // string, and this account takes no keys.
      ASSISTANTS_STORAGE_CONNECTION_STRING__queueServiceUri: storage.properties.primaryEndpoints.queue
      // Files' bytes, by the same identity.
      ASSISTANTS_STORAGE_CONNECTION_STRING__blobServiceUri: storage.properties.primaryEndpoints.blob
      ASSISTANTS_STORAGE_CONNECTION_STRING__credential: 'managedidentity'
      ASSISTANTS_STORAGE_CONNECTION_STRING__clientId: identityClientId
      ASSISTANTS_API_KEYS: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${apiKeysSecretName})'
      ASSISTANTS_MODEL_BASE_URL: modelBaseUrl
      // A key only ever as a Key Vault reference. Without one, an Azure endpoint is called as the identity.
      ASSISTANTS_MODEL_API_KEY: empty(modelApiKeySecretName) ? '' : modelApiKeyReference
      // code_interpreter runs in the pool's sessions, as the identity (Session Executor on the pool).
      ASSISTANTS_SANDBOX_ENDPOINT: sandboxEndpoint
    }
  }
}

output name string = app.name
output endpoint string = 'https://${app.properties.defaultHostName}'
