// The API keys live here; the app reads them through a Key Vault reference.
param name string
param location string
param tags object
param secretName string

@secure()
param secretValue string

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

output name string = vault.name
