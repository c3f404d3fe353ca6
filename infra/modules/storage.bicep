// One account: the tables that hold assistants, threads, messages and files' metadata, the
// container of files' bytes, the queue that carries runs to the worker, the Functions host's own storage, and the container Flex Consumption
// deploys the app from. No account keys: every client signs in with Entra ID.
param name string
param location string
param tags object
param deploymentContainerName string

@description('The queue that carries runs to the worker (app setting ASSISTANTS_RUNS_QUEUE).')
param runsQueueName string

@description('The queue that carries vector-store files to ingestion (app setting ASSISTANTS_INGEST_QUEUE).')
param ingestQueueName string

@description('The container that holds uploaded files, one blob per file (the app names it "files").')
param filesContainerName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }

  resource tables 'tableServices' = {
    name: 'default'
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Files' bytes. The app's identity may read and write blobs here (roles.bicep) but not create
// containers, so it exists from the start.
resource files 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: filesContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource runsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queues
  name: runsQueueName
}

// Where the Functions host moves a run message after its last failed attempt. The host would
// create it on first use, but the app's identity may only read, process and send messages
// (roles.bicep), not create queues, so it exists from the start.
resource runsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queues
  name: '${runsQueueName}-poison'
}

// Vector-store indexes (one LanceDB table per store beneath it), made here for the same reason.
resource indexes 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'indexes'
  properties: {
    publicAccess: 'None'
  }
}

// Vector-store ingestion: a queue of its own, so that ingesting files never delays runs.
resource ingestQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queues
  name: ingestQueueName
}

resource ingestPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queues
  name: '${ingestQueueName}-poison'
}

output name string = account.name
