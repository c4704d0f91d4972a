// The Uppy test page's script: Uppy as an application bundles it, from the
// npm packages, with no CDN. web/uppy_test.go bundles it with esbuild and
// calls window.runUppy.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import AwsS3 from '@uppy/aws-s3'
import Tus from '@uppy/tus'

// withToken adds the bearer token to @uppy/aws-s3's calls to the signing
// routes: in companion mode the plugin sends them with the global fetch
// and no way to set headers of its own.
function withToken(endpoint, token) {
  const fetch = window.fetch
  window.fetch = (url, opts = {}) => {
    if (String(url).startsWith(endpoint + '/s3/')) {
      opts = { ...opts, headers: { ...opts.headers, authorization: 'Bearer ' + token } }
    }
    return fetch(url, opts)
  }
}

// runUppy uploads the files at the given URLs of the page's own server
// through one plugin and reports, in #result, what Uppy said of each.
window.runUppy = async ({ plugin, endpoint, token, multipart, chunkSize, files }) => {
  const uppy = new Uppy({ autoProceed: false })
  uppy.use(Dashboard, { inline: true, target: '#dashboard', hideUploadButton: true })
  if (plugin === 'aws-s3') {
    if (token) withToken(endpoint, token)
    uppy.use(AwsS3, { companionEndpoint: endpoint, shouldUseMultipart: multipart })
    // Spillway needs each file's size before it takes it (README, "Use it
    // from Uppy"); the plugin sends the file's metadata.
    uppy.on('file-added', (file) => uppy.setFileMeta(file.id, { size: file.size }))
  } else {
    uppy.use(Tus, {
      endpoint: endpoint + '/tus/',
      chunkSize,
      headers: token ? { authorization: 'Bearer ' + token } : {},
      retryDelays: [0, 500, 1000],
    })
  }
  for (const f of files) {
    const blob = await (await fetch(f.url)).blob()
    uppy.addFile({ name: f.name, type: 'application/octet-stream', data: blob })
  }
  const result = await uppy.upload()
  const out = {
    successful: (result.successful || []).map((f) => ({ name: f.name, body: f.response?.body ?? null, uploadURL: f.response?.uploadURL ?? '' })),
    failed: (result.failed || []).map((f) => ({ name: f.name, error: String(f.error) })),
  }
  const pre = document.createElement('pre')
  pre.id = 'result'
  pre.textContent = JSON.stringify(out)
  document.body.append(pre)
}
