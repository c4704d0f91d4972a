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

// loseParts makes every send of part n fail as a lost connection does
// (the request goes to a closed port) until the returned function is
// called, and counts the sends of each part number.
function loseParts(n, sends) {
  const open = XMLHttpRequest.prototype.open
  let lose = true
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    const m = method === 'PUT' && /\/parts\/(\d+)\?|[?&]partNumber=(\d+)/.exec(String(url))
    if (m) {
      const part = Number(m[1] || m[2])
      sends[part] = (sends[part] || 0) + 1
      if (lose && part === n) url = 'http://127.0.0.1:1/'
    }
    return open.call(this, method, url, ...rest)
  }
  return () => { lose = false }
}

// losePatches makes tus PATCH number n and every PATCH after it fail as
// a lost connection does, until the returned function is called, and
// records each PATCH's Upload-Offset and whether it was lost, and counts
// the creations (POST).
function losePatches(n, patches, creations) {
  const open = XMLHttpRequest.prototype.open
  const setRequestHeader = XMLHttpRequest.prototype.setRequestHeader
  let lose = true
  let count = 0
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.spillwayPatch = null
    if (method === 'POST' && /\/tus\/$/.test(String(url))) creations.n++
    if (method === 'PATCH') {
      count++
      const p = { offset: -1, lost: lose && count >= n }
      patches.push(p)
      this.spillwayPatch = p
      if (p.lost) url = 'http://127.0.0.1:1/'
    }
    return open.call(this, method, url, ...rest)
  }
  XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
    if (this.spillwayPatch && name.toLowerCase() === 'upload-offset') this.spillwayPatch.offset = Number(value)
    return setRequestHeader.call(this, name, value)
  }
  return () => { lose = false }
}

// report is what the test reads of an upload.
function report(result) {
  return {
    successful: (result?.successful || []).map((f) => ({ name: f.name, body: f.response?.body ?? null, uploadURL: f.response?.uploadURL ?? '' })),
    failed: (result?.failed || []).map((f) => ({ name: f.name, error: String(f.error) })),
  }
}

// runUppy uploads the files at the given URLs of the page's own server
// through one plugin and reports, in #result, what Uppy said of each.
window.runUppy = async ({ plugin, endpoint, token, multipart, chunkSize, files, losePart, losePatch }) => {
  // Uppy logs a failed upload as a console error, which fails the test
  // unless the test makes it fail (losePart, losePatch): it checks them
  // itself.
  const logged = []
  const logger = { debug() {}, warn() {}, error: (...a) => logged.push(a.map(String).join(' ')) }
  const uppy = new Uppy({ autoProceed: false, ...(losePart || losePatch ? { logger } : {}) })
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
  const sends = {}
  const patches = []
  const creations = { n: 0 }
  let reconnect = null
  if (losePart) reconnect = loseParts(losePart, sends)
  if (losePatch) reconnect = losePatches(losePatch, patches, creations)
  let out = report(await uppy.upload())
  if (reconnect) {
    // The connection is back: Retry, as the Dashboard's button does.
    reconnect()
    out = { ...report(await uppy.retryAll()), firstTry: out, sends, patches, creations: creations.n, logged }
  }
  const pre = document.createElement('pre')
  pre.id = 'result'
  pre.textContent = JSON.stringify(out)
  document.body.append(pre)
}
