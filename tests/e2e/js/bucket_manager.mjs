// The integration guide's BucketEncryptionManager (section "实现示例", "Bucket加密管理完整示例"),
// run against our server by tests/e2e/test_s3_js.py.
//
// The class below is copied from the guide VERBATIM (it is our own contract's example code).
// Only what the guide leaves to the application is ours: the S3Client construction (the guide's,
// pointed at the test server with the test's credentials), `kmsAPI` (the guide's, over the guide's
// `callKMSAPI` from guide_request.mjs), and the scenario after the class, which follows the guide's
// `bucketEncryptionExample()` and prints what happened as one JSON document on stdout. The class's
// own console.log lines go to stderr so that stdout holds only that document.
//
// Input: one JSON argument {"endpoint", "accessKeyId", "secretAccessKey"}.

import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';

import { awsConfig, callKMSAPI } from './guide_request.mjs';

// ---- from the guide, verbatim (import list and class) -----------------------------------------

import {
  ListBucketsCommand,
  GetBucketEncryptionCommand,
  PutBucketEncryptionCommand,
  DeleteBucketEncryptionCommand
} from '@aws-sdk/client-s3';

class BucketEncryptionManager {
  constructor(s3Client, kmsAPI) {
    this.s3Client = s3Client;
    this.kmsAPI = kmsAPI;
    this.buckets = [];
    this.kmsKeys = [];
  }

  // 初始化 - 加载buckets和KMS密钥
  async initialize() {
    try {
      await Promise.all([
        this.loadBuckets(),
        this.loadKMSKeys()
      ]);
      console.log('Bucket加密管理器初始化完成');
      return { success: true };
    } catch (error) {
      console.error('初始化失败:', error);
      throw error;
    }
  }

  // 加载所有buckets及其加密状态
  async loadBuckets() {
    try {
      const listResult = await this.s3Client.send(new ListBucketsCommand({}));

      // 并行获取每个bucket的加密配置
      this.buckets = await Promise.all(
        listResult.Buckets.map(async (bucket) => {
          const encryptionInfo = await this.getBucketEncryptionInfo(bucket.Name);
          return {
            name: bucket.Name,
            creationDate: bucket.CreationDate,
            ...encryptionInfo
          };
        })
      );

      console.log(`已加载 ${this.buckets.length} 个buckets`);
      return this.buckets;
    } catch (error) {
      console.error('加载buckets失败:', error);
      throw error;
    }
  }

  // 获取单个bucket的加密信息
  async getBucketEncryptionInfo(bucketName) {
    try {
      const encryptionResult = await this.s3Client.send(
        new GetBucketEncryptionCommand({ Bucket: bucketName })
      );

      const rule = encryptionResult.ServerSideEncryptionConfiguration?.Rules?.[0];
      const defaultEncryption = rule?.ApplyServerSideEncryptionByDefault;

      if (!defaultEncryption) {
        return {
          encryptionStatus: 'Disabled',
          encryptionType: null,
          encryptionAlgorithm: null,
          kmsKeyId: null,
          kmsKeyName: null
        };
      }

      const isKMS = defaultEncryption.SSEAlgorithm === 'aws:kms';
      const kmsKeyId = defaultEncryption.KMSMasterKeyID;
      const kmsKeyName = isKMS ? this.getKMSKeyName(kmsKeyId) : null;

      return {
        encryptionStatus: 'Enabled',
        encryptionType: isKMS ? 'SSE-KMS' : 'SSE-S3',
        encryptionAlgorithm: isKMS ? 'AES-256 (KMS)' : 'AES-256 (S3)',
        kmsKeyId: kmsKeyId || null,
        kmsKeyName: kmsKeyName || null
      };
    } catch (error) {
      // 404或NoSuchBucketPolicy表示未配置加密
      if (error.name === 'NoSuchBucketPolicy' || error.$metadata?.httpStatusCode === 404) {
        return {
          encryptionStatus: 'Disabled',
          encryptionType: null,
          encryptionAlgorithm: null,
          kmsKeyId: null,
          kmsKeyName: null
        };
      }
      throw error;
    }
  }

  // 加载KMS密钥列表
  async loadKMSKeys() {
    try {
      const keysList = await this.kmsAPI.getKeyList();
      this.kmsKeys = keysList.keys || [];
      console.log(`已加载 ${this.kmsKeys.length} 个KMS密钥`);
      return this.kmsKeys;
    } catch (error) {
      console.error('加载KMS密钥失败:', error);
      // KMS密钥加载失败不应该阻止bucket加载
      this.kmsKeys = [];
    }
  }

  // 根据KMS密钥ID获取密钥名称
  getKMSKeyName(keyId) {
    if (!keyId || !this.kmsKeys.length) return null;

    const key = this.kmsKeys.find(k => k.key_id === keyId);
    return key?.tags?.name || key?.description || keyId.substring(0, 8) + '...';
  }

  // 配置bucket加密
  async configureBucketEncryption(bucketName, encryptionType, kmsKeyId = null) {
    try {
      const encryptionConfig = {
        Bucket: bucketName,
        ServerSideEncryptionConfiguration: {
          Rules: [
            {
              ApplyServerSideEncryptionByDefault: {
                SSEAlgorithm: encryptionType === 'SSE-KMS' ? 'aws:kms' : 'AES256',
                ...(encryptionType === 'SSE-KMS' && kmsKeyId && { KMSMasterKeyID: kmsKeyId })
              }
            }
          ]
        }
      };

      await this.s3Client.send(new PutBucketEncryptionCommand(encryptionConfig));

      // 更新本地缓存
      await this.refreshBucketInfo(bucketName);

      console.log(`Bucket ${bucketName} 加密配置成功: ${encryptionType}`);
      return { success: true };
    } catch (error) {
      console.error(`配置bucket加密失败 (${bucketName}):`, error);
      throw error;
    }
  }

  // 移除bucket加密配置
  async removeBucketEncryption(bucketName) {
    try {
      await this.s3Client.send(new DeleteBucketEncryptionCommand({ Bucket: bucketName }));

      // 更新本地缓存
      await this.refreshBucketInfo(bucketName);

      console.log(`Bucket ${bucketName} 加密配置已移除`);
      return { success: true };
    } catch (error) {
      console.error(`移除bucket加密失败 (${bucketName}):`, error);
      throw error;
    }
  }

  // 为bucket创建专用KMS密钥并配置加密
  async setupDedicatedEncryption(bucketName, keyName, keyDescription) {
    try {
      // 1. 创建专用KMS密钥
      const newKey = await this.kmsAPI.createKey({
        KeyUsage: 'ENCRYPT_DECRYPT',
        Description: keyDescription || `Dedicated encryption key for bucket: ${bucketName}`,
        Tags: {
          name: keyName,
          bucket: bucketName,
          purpose: 'bucket-encryption',
          created_by: 'bucket-manager',
          created_at: new Date().toISOString()
        }
      });

      // 2. 配置bucket使用新密钥
      await this.configureBucketEncryption(bucketName, 'SSE-KMS', newKey.key_id);

      // 3. 更新KMS密钥缓存
      await this.loadKMSKeys();

      console.log(`为bucket ${bucketName} 创建并配置专用密钥: ${newKey.key_id}`);
      return {
        success: true,
        keyId: newKey.key_id,
        keyName: keyName
      };
    } catch (error) {
      console.error(`设置专用加密失败 (${bucketName}):`, error);
      throw error;
    }
  }

  // 批量配置多个bucket的加密
  async batchConfigureEncryption(configurations) {
    const results = [];

    for (const config of configurations) {
      try {
        await this.configureBucketEncryption(
          config.bucketName,
          config.encryptionType,
          config.kmsKeyId
        );
        results.push({ bucketName: config.bucketName, success: true });
      } catch (error) {
        results.push({
          bucketName: config.bucketName,
          success: false,
          error: error.message
        });
      }
    }

    const successCount = results.filter(r => r.success).length;
    console.log(`批量配置完成: ${successCount}/${configurations.length} 成功`);

    return results;
  }

  // 刷新单个bucket信息
  async refreshBucketInfo(bucketName) {
    try {
      const bucketIndex = this.buckets.findIndex(b => b.name === bucketName);
      if (bucketIndex !== -1) {
        const encryptionInfo = await this.getBucketEncryptionInfo(bucketName);
        this.buckets[bucketIndex] = {
          ...this.buckets[bucketIndex],
          ...encryptionInfo
        };
      }
    } catch (error) {
      console.error(`刷新bucket信息失败 (${bucketName}):`, error);
    }
  }

  // 获取加密统计信息
  getEncryptionStats() {
    const total = this.buckets.length;
    const encrypted = this.buckets.filter(b => b.encryptionStatus === 'Enabled').length;
    const sseS3 = this.buckets.filter(b => b.encryptionType === 'SSE-S3').length;
    const sseKMS = this.buckets.filter(b => b.encryptionType === 'SSE-KMS').length;
    const unencrypted = total - encrypted;

    return {
      total,
      encrypted,
      unencrypted,
      sseS3,
      sseKMS,
      encryptionRate: total > 0 ? (encrypted / total * 100).toFixed(1) + '%' : '0%'
    };
  }

  // 搜索和过滤功能
  searchBuckets(query, filters = {}) {
    let filtered = [...this.buckets];

    // 名称搜索
    if (query) {
      const lowerQuery = query.toLowerCase();
      filtered = filtered.filter(bucket =>
        bucket.name.toLowerCase().includes(lowerQuery)
      );
    }

    // 加密状态过滤
    if (filters.encryptionStatus) {
      filtered = filtered.filter(bucket =>
        bucket.encryptionStatus === filters.encryptionStatus
      );
    }

    // 加密类型过滤
    if (filters.encryptionType) {
      filtered = filtered.filter(bucket =>
        bucket.encryptionType === filters.encryptionType
      );
    }

    return filtered;
  }

  // 获取可用的KMS密钥选项
  getKMSKeyOptions() {
    return this.kmsKeys.map(key => ({
      value: key.key_id,
      label: key.tags?.name || key.description || `Key: ${key.key_id.substring(0, 8)}...`,
      description: key.description,
      enabled: key.enabled,
      creationDate: key.creation_date
    }));
  }
}

// ---- end of the guide's code ------------------------------------------------------------------

const settings = JSON.parse(process.argv[2]);
console.log = (...args) => console.error(...args);

// The guide's client construction and kmsAPI, pointed at the test server.
awsConfig.endpoint = settings.endpoint;
awsConfig.accessKeyId = settings.accessKeyId;
awsConfig.secretAccessKey = settings.secretAccessKey;

const s3Client = new S3Client({
  region: 'us-east-1',
  endpoint: settings.endpoint,
  forcePathStyle: true,
  credentials: {
    accessKeyId: settings.accessKeyId,
    secretAccessKey: settings.secretAccessKey
  }
});

const kmsAPI = {
  createKey: async (params) => callKMSAPI('POST', '/kms/keys', params),
  getKeyList: async () => callKMSAPI('GET', '/kms/keys'),
  getKeyDetails: async (keyId) => callKMSAPI('GET', `/kms/keys/${keyId}`)
};

const BUCKETS = [
  'sensitive-data-bucket',
  'public-assets',
  'user-uploads',
  'backup-data',
  'kms-default-bucket',
  'unencrypted-logs'
];

// The manager updates its arrays in place: every report entry is a copy taken when it is made.
const snap = (value) => JSON.parse(JSON.stringify(value ?? null));
const find = (manager, name) => snap(manager.buckets.find(b => b.name === name));
const report = {};

try {
  // The buckets the guide's example works on, created with the SDK.
  report.created = [];
  for (const name of BUCKETS) {
    const created = await s3Client.send(new CreateBucketCommand({ Bucket: name }));
    report.created.push({ name, status: created.$metadata.httpStatusCode });
  }

  // 2.-4. of the guide's example.
  const bucketManager = new BucketEncryptionManager(s3Client, kmsAPI);
  report.initialize = await bucketManager.initialize();
  report.initialBuckets = snap(bucketManager.buckets);
  report.initialKeyIds = bucketManager.kmsKeys.map(k => k.key_id);
  report.initialStats = bucketManager.getEncryptionStats();

  // 5. SSE-KMS with a dedicated key.
  report.dedicated = await bucketManager.setupDedicatedEncryption(
    'sensitive-data-bucket',
    'sensitive-data-key',
    'Encryption key for sensitive data bucket'
  );
  report.afterDedicated = find(bucketManager, 'sensitive-data-bucket');

  // 6. SSE-S3 for the other buckets, then SSE-KMS with no key id (the server's default key).
  report.batch = await bucketManager.batchConfigureEncryption([
    { bucketName: 'public-assets', encryptionType: 'SSE-S3' },
    { bucketName: 'user-uploads', encryptionType: 'SSE-S3' },
    { bucketName: 'backup-data', encryptionType: 'SSE-S3' }
  ]);
  report.kmsDefault = await bucketManager.configureBucketEncryption(
    'kms-default-bucket',
    'SSE-KMS'
  );

  // Refused configurations: a bucket that does not exist, a key that does not exist.
  report.failingBatch = await bucketManager.batchConfigureEncryption([
    { bucketName: 'no-such-bucket', encryptionType: 'SSE-S3' },
    {
      bucketName: 'backup-data',
      encryptionType: 'SSE-KMS',
      kmsKeyId: '00000000-0000-4000-8000-000000000000'
    }
  ]);

  // Everything again from the server, now that the key list knows the dedicated key.
  report.reloaded = snap(await bucketManager.loadBuckets());

  // 7. and 8.
  report.unencrypted = bucketManager
    .searchBuckets('', { encryptionStatus: 'Disabled' })
    .map(b => b.name);
  report.kmsBuckets = bucketManager
    .searchBuckets('', { encryptionType: 'SSE-KMS' })
    .map(b => b.name);
  report.stats = bucketManager.getEncryptionStats();
  report.keyOptions = snap(bucketManager.getKMSKeyOptions());

  report.removed = await bucketManager.removeBucketEncryption('public-assets');
  report.afterRemoval = find(bucketManager, 'public-assets');
  report.finalStats = bucketManager.getEncryptionStats();
  report.ok = true;
} catch (error) {
  report.ok = false;
  report.error = { name: error?.name, message: String(error?.message ?? error) };
}
process.stdout.write(JSON.stringify(report) + '\n');
