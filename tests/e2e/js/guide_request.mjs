// The integration guide's request functions (section "JavaScript 基础请求函数") as a module, for
// scripts that need the guide's `callKMSAPI` as a library (bucket_manager.mjs builds the guide's
// `kmsAPI` on it). The same code as in kms_client.mjs: copied from the guide with exactly ONE
// change, marked "CHANGED" (the guide passes `body: ''` on GET, which fetch refuses; API.md §1
// allows tests this one change). Callers set `awsConfig.endpoint`, `accessKeyId` and
// `secretAccessKey` before calling.

// ---- from the guide, verbatim except for the line marked CHANGED ------------------------------

import AWS from 'aws-sdk';

// 配置 AWS SDK
const awsConfig = {
  accessKeyId: 'your-access-key',
  secretAccessKey: 'your-secret-key',
  region: 'us-east-1',
  endpoint: 'http://localhost:9000',
  s3ForcePathStyle: true
};

// 创建签名请求的函数
function createSignedRequest(method, path, body = null) {
  const endpoint = new AWS.Endpoint(awsConfig.endpoint);
  const request = new AWS.HttpRequest(endpoint, awsConfig.region);

  request.method = method;
  request.path = `/rustfs/admin/v3${path}`;
  request.headers['Content-Type'] = 'application/json';

  if (body) {
    request.body = JSON.stringify(body);
  }

  const signer = new AWS.Signers.V4(request, 'execute-api');
  signer.addAuthorization(awsConfig, new Date());

  return request;
}

// 基础的 KMS API 调用函数
async function callKMSAPI(method, path, body = null) {
  const signedRequest = createSignedRequest(method, path, body);

  const options = {
    method: signedRequest.method,
    headers: signedRequest.headers,
    // CHANGED (the only change to the guide, allowed by API.md §1): the guide has
    // `body: signedRequest.body`, which passes body '' on GET and makes fetch throw.
    body: signedRequest.method === 'GET' ? undefined : signedRequest.body
  };

  const response = await fetch(signedRequest.endpoint.href + signedRequest.path, options);
  const data = await response.json();

  if (!response.ok) {
    throw new Error(`KMS API Error: ${data.error?.message || response.statusText}`);
  }

  return data;
}

// ---- end of the guide's code ------------------------------------------------------------------

export { awsConfig, createSignedRequest, callKMSAPI };
