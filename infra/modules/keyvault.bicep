// The API keys live here, and the key of an existing model endpoint when runs use one; the app
// reads both through Key Vault references.
param name string
param location string
param tags object
param secretName string

@secure()
param secretValue string

@description('Name of the secret that holds the key of the model endpoint (ASSISTANTS_MODEL_API_KEY).')
param modelApiKeySecretName string

@secure()
@description('That key; empty stores no secret.')
param modelApiKey string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }

  resource apiKeys 'secrets' = {
    name: secretName
    properties: {
      value: secretValue
      contentType: 'Comma-separated API keys of the Assistants API'
    }
  }
}

// Only when runs call an existing endpoint with a key; the deployment's own account takes none.
resource modelKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(modelApiKey)) {
  parent: vault
  name: modelApiKeySecretName
  properties: {
    value: modelApiKey
    contentType: 'API key of the model endpoint in ASSISTANTS_MODEL_BASE_URL'
  }
}

output name string = vault.name
