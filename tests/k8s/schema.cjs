// tests/k8s/schema.cjs: checks Kubernetes objects against the API's own
// schemas (kubernetes-models: Kubernetes v1.33's OpenAPI compiled to ajv
// validators), and flags fields the schema does not know.
//
// Usage: node schema.cjs FILE.json...   (each FILE: a JSON array of objects)
// Prints one line per problem, "FILE: Kind/name: problem", then a count;
// exits 0 when there is none, 1 otherwise, 2 on bad input.
"use strict";

const fs = require("fs");

// The compiled validators read data.FIELD for each field their schema
// declares, and enumerate the keys of maps (labels, data, limits). So a
// key of an object that was read from but neither enumerated nor read
// itself is a field the schema does not have: a typo, or a field in the
// wrong place. (The schemas do not say additionalProperties: false, so
// without this such a field would pass, and the API server would drop or
// refuse it.) Returns the proxy; records one entry per object.
function track(value, path, records) {
    if (Array.isArray(value)) {
        return value.map((v, i) => track(v, `${path}/${i}`, records));
    }
    if (value === null || typeof value !== "object") {
        return value;
    }
    const rec = {
        path,
        keys: Object.keys(value),
        read: new Set(),
        enumerated: false,
        touched: false,
    };
    records.push(rec);
    const copy = {};
    for (const k of rec.keys) {
        copy[k] = track(value[k], `${path}/${k}`, records);
    }
    const note = (k) => {
        rec.touched = true;
        if (typeof k === "string") {
            rec.read.add(k);
        }
    };
    return new Proxy(copy, {
        get(t, k, r) {
            note(k);
            return Reflect.get(t, k, r);
        },
        has(t, k) {
            note(k);
            return Reflect.has(t, k);
        },
        ownKeys(t) {
            rec.touched = true;
            rec.enumerated = true;
            return Reflect.ownKeys(t);
        },
    });
}

// The model class for apiVersion and kind, or null when the package has no
// schema for them (a custom resource, a typo). The package keeps the
// schemas of API versions Kubernetes has since removed (extensions/v1beta1
// Deployment): check_refs.py holds the versions to use.
function modelFor(apiVersion, kind) {
    if (typeof apiVersion !== "string" || typeof kind !== "string" ||
        !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion)) {
        return null;
    }
    let mod;
    try {
        mod = require(`kubernetes-models/${apiVersion}`);
    } catch (e) {
        return null;
    }
    const Model = mod[kind];
    return typeof Model === "function" && Model.apiVersion === apiVersion &&
        Model.kind === kind ? Model : null;
}

// Problems of one object, as strings.
function checkObject(obj) {
    const Model = modelFor(obj.apiVersion, obj.kind);
    if (Model === null) {
        return [`no schema for apiVersion '${obj.apiVersion}' kind ` +
                `'${obj.kind}'`];
    }
    const problems = [];
    const records = [];
    try {
        Model.prototype.validate.call(track(obj, "", records));
    } catch (e) {
        if (!Array.isArray(e.errors)) {
            throw e;
        }
        for (const err of e.errors) {
            problems.push(`${err.instancePath || "/"} ${err.message}`);
        }
    }
    for (const rec of records) {
        // Untouched: under a field already reported, or a free-form object.
        if (!rec.touched || rec.enumerated) {
            continue;
        }
        for (const k of rec.keys) {
            if (!rec.read.has(k)) {
                problems.push(`${rec.path}/${k}: unknown field '${k}'`);
            }
        }
    }
    return problems;
}

function main(files) {
    if (files.length === 0) {
        process.stderr.write("usage: node schema.cjs FILE.json...\n");
        return 2;
    }
    let count = 0;
    let objects = 0;
    for (const file of files) {
        const objs = JSON.parse(fs.readFileSync(file, "utf8"));
        if (!Array.isArray(objs)) {
            process.stderr.write(`${file}: not a JSON array\n`);
            return 2;
        }
        for (const obj of objs) {
            objects++;
            const meta = obj && obj.metadata ? obj.metadata : {};
            const id = `${obj && obj.kind}/${meta.name}`;
            for (const p of checkObject(obj)) {
                console.log(`${file}: ${id}: ${p}`);
                count++;
            }
        }
    }
    console.log(`schema: ${objects} objects, ${count} problems`);
    return count === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
