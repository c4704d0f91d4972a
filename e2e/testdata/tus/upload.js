// upload.js sends one file with tus-js-client, the tus project's own
// client, as an application would, and writes what it does as JSON lines
// on stdout for the Go test to check. Its arguments come from the
// environment:
//
//   TUS_MODULES   the directory whose node_modules holds tus-js-client
//   TUS_ENDPOINT  the server's /tus/ URL
//   TUS_FILE      the file to send; TUS_NAME the name to store it under
//   TUS_TOKEN     the bearer token
//   TUS_URLS      the file where the client keeps upload URLs to resume
//   TUS_CHUNK     chunkSize in bytes
//   TUS_KILL_AT   when set, the client kills itself with SIGKILL once it
//                 has sent this many bytes: mid-PATCH, as a crash would
//   TUS_KEEP_URL  when set, the URL stays in the storage once the upload
//                 is done (removeFingerprintOnSuccess off, the default)
'use strict'
const fs = require('fs')
const path = require('path')
const tus = require(path.join(process.env.TUS_MODULES, 'node_modules', 'tus-js-client'))

const out = (ev) => process.stdout.write(JSON.stringify(ev) + '\n')
const file = process.env.TUS_FILE
const size = fs.statSync(file).size
const killAt = process.env.TUS_KILL_AT ? Number(process.env.TUS_KILL_AT) : -1

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint: process.env.TUS_ENDPOINT,
  chunkSize: Number(process.env.TUS_CHUNK),
  uploadSize: size,
  metadata: { filename: process.env.TUS_NAME, filetype: 'application/octet-stream' },
  headers: { Authorization: 'Bearer ' + process.env.TUS_TOKEN },
  urlStorage: new tus.FileUrlStorage(process.env.TUS_URLS),
  // A stable fingerprint, so that a second run finds the first one's URL.
  fingerprint: async () => 'spillway-test:' + process.env.TUS_NAME + ':' + size,
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: !process.env.TUS_KEEP_URL,
  retryDelays: [0, 100, 300, 1000, 2000, 4000],
  onBeforeRequest: (req) => {
    out({ ev: 'req', method: req.getMethod(), url: req.getURL(), offset: req.getHeader('Upload-Offset') ?? null })
  },
  onAfterResponse: (req, res) => {
    out({
      ev: 'res', method: req.getMethod(), status: res.getStatus(),
      offset: res.getHeader('Upload-Offset') ?? null,
      sha256: res.getHeader('Spillway-Sha256') ?? null,
      file: res.getHeader('Spillway-File') ?? null,
    })
  },
  onProgress: (sent) => {
    if (killAt >= 0 && sent >= killAt) {
      out({ ev: 'kill', sent })
      process.kill(process.pid, 'SIGKILL')
    }
  },
  onError: (err) => {
    out({ ev: 'error', message: String(err) })
    process.exit(1)
  },
  onSuccess: () => {
    out({ ev: 'done', url: upload.url })
  },
})

upload.findPreviousUploads().then((previous) => {
  out({ ev: 'previous', count: previous.length })
  if (previous.length > 0) {
    upload.resumeFromPreviousUpload(previous[0])
  }
  upload.start()
})
