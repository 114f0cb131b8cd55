# fish completion for swarmpull, generated from its commander program (`swarmpull completion fish`): do not edit.
# Install: copy to ~/.config/fish/completions/swarmpull.fish.

# The subcommand being completed ("swarmpull store prune"): walk the words before the cursor, skipping the values of options.
function __swarmpull_command
    set -l words (commandline -opc)
    set -e words[1]
    set -l cmd swarmpull
    set -l skip 0
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        switch "$cmd $w"
            case 'swarmpull pull' 'swarmpull resolve' 'swarmpull serve' 'swarmpull store' 'swarmpull completion' 'swarmpull help' 'swarmpull store ls' 'swarmpull store prune' 'swarmpull store help'
                set cmd "$cmd $w"
            case 'swarmpull pull --platform' 'swarmpull pull --oci' 'swarmpull pull -o' 'swarmpull pull --output' 'swarmpull pull --store' 'swarmpull pull --linger' 'swarmpull pull --port' 'swarmpull pull --peers' 'swarmpull pull --peers-file' 'swarmpull pull --swarm-key' 'swarmpull pull --interface' 'swarmpull pull --max-upload-rate' 'swarmpull pull --max-download-rate' 'swarmpull pull --creds' 'swarmpull resolve --platform' 'swarmpull resolve --creds' 'swarmpull serve --store' 'swarmpull serve --port' 'swarmpull serve --peers' 'swarmpull serve --peers-file' 'swarmpull serve --swarm-key' 'swarmpull serve --interface' 'swarmpull serve --max-upload-rate' 'swarmpull serve --max-download-rate' 'swarmpull store ls --store' 'swarmpull store prune --store' 'swarmpull store prune --max-size' 'swarmpull store prune --older-than'
                set skip 1
        end
    end
    echo $cmd
end

# No file names unless an option asks for them.
complete -c swarmpull -f
# swarmpull
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -a 'pull' -d 'pull IMAGE into docker load (default), an OCI layout (--oci) or a tar (-o)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -a 'resolve' -d 'print the digest IMAGE points to at its registry (the index digest for a multi-arch image)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -a 'serve' -d 'seed every complete blob in the store to LAN peers until stopped (SIGINT/SIGTERM: exit 0)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -a 'store' -d 'list or prune the blob store'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -a 'completion' -d 'print the completion script for a shell (bash, zsh or fish)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -a 'help' -d 'display help for command'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -s V -l version -d 'output the version number'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull\'' -s h -l help -d 'display help for command'
# swarmpull pull
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l platform -x -a 'linux/amd64 linux/arm64 linux/arm64/v8 linux/arm/v7 linux/arm/v6 linux/386 linux/ppc64le linux/s390x linux/riscv64' -d 'platform to pull from a multi-arch image (default: this host)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l oci -x -a '(__fish_complete_directories (commandline -ct))' -d 'write an OCI image layout to DIR (merged into an existing one)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -s o -l output -r -F -d 'write a docker-load tar to FILE, or to stdout with -'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l store -x -a '(__fish_complete_directories (commandline -ct))' -d 'blob store directory'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l json -d 'print one JSON result object on stdout at the end'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -s q -l quiet -d 'no progress output'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l registry-only -d 'fetch every byte from the registry, no peers'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l no-registry -d 'fetch blobs from peers only (the manifest still comes from the registry)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l linger -x -d 'after the image is ready, keep seeding while peers still ask, at most this long'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l port -x -d 'TCP port for peers (default 7881, or any free port if taken; 0: any)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l no-mdns -d 'do not discover peers with multicast DNS (use --peers)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l peers -x -d 'peers to contact, for networks without multicast'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l peers-file -r -F -d 'peers one per line, or an Ansible INI inventory'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l swarm-key -r -F -d 'private swarm: only peers holding this key exchange pieces (or SWARMPULL_SWARM_KEY)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l interface -x -d 'address of the network interface for mDNS (default: the first non-loopback one)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l max-upload-rate -x -d 'send at most SIZE bytes a second to peers, all together (e.g. 50M, 800K)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l max-download-rate -x -d 'receive at most SIZE bytes a second from peers and the registry together (e.g. 50M)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l plain-http -d 'talk HTTP, not HTTPS, to the registry (localhost/127.*: HTTPS is tried first, then HTTP)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l insecure -d 'do not verify the registry TLS certificate'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l creds -x -d 'registry credentials (default: docker login config, REGISTRY_AUTH_FILE)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -l debug -d 'log registry and peer decisions, and stack traces, to stderr'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull pull\'' -s h -l help -d 'display help for command'
# swarmpull resolve
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull resolve\'' -l platform -x -a 'linux/amd64 linux/arm64 linux/arm64/v8 linux/arm/v7 linux/arm/v6 linux/386 linux/ppc64le linux/s390x linux/riscv64' -d 'print the digest of this platform\'s manifest instead of the index'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull resolve\'' -l plain-http -d 'talk HTTP, not HTTPS, to the registry (localhost/127.*: HTTPS is tried first, then HTTP)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull resolve\'' -l insecure -d 'do not verify the registry TLS certificate'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull resolve\'' -l creds -x -d 'registry credentials (default: docker login config, REGISTRY_AUTH_FILE)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull resolve\'' -l debug -d 'log registry and peer decisions, and stack traces, to stderr'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull resolve\'' -s h -l help -d 'display help for command'
# swarmpull serve
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l store -x -a '(__fish_complete_directories (commandline -ct))' -d 'blob store directory'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l debug -d 'log peer decisions to stderr'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -s q -l quiet -d 'no log lines'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l port -x -d 'TCP port for peers (default 7881, or any free port if taken; 0: any)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l no-mdns -d 'do not discover peers with multicast DNS (use --peers)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l peers -x -d 'peers to contact, for networks without multicast'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l peers-file -r -F -d 'peers one per line, or an Ansible INI inventory'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l swarm-key -r -F -d 'private swarm: only peers holding this key exchange pieces (or SWARMPULL_SWARM_KEY)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l interface -x -d 'address of the network interface for mDNS (default: the first non-loopback one)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l max-upload-rate -x -d 'send at most SIZE bytes a second to peers, all together (e.g. 50M, 800K)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -l max-download-rate -x -d 'receive at most SIZE bytes a second from peers and the registry together (e.g. 50M)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull serve\'' -s h -l help -d 'display help for command'
# swarmpull store
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store\'' -a 'ls' -d 'list the blobs in the store with the images they belong to, and partial downloads with their progress'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store\'' -a 'prune' -d 'delete least-recently-used or old blobs, and leftovers of interrupted pulls; never a blob a running pull or serve uses'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store\'' -a 'help' -d 'display help for command'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store\'' -s h -l help -d 'display help for command'
# swarmpull store ls
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store ls\'' -l store -x -a '(__fish_complete_directories (commandline -ct))' -d 'blob store directory'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store ls\'' -l json -d 'print one JSON document on stdout'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store ls\'' -s h -l help -d 'display help for command'
# swarmpull store prune
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store prune\'' -l store -x -a '(__fish_complete_directories (commandline -ct))' -d 'blob store directory'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store prune\'' -l max-size -x -d 'delete least-recently-used blobs until the store takes at most SIZE (e.g. 10G, 500M; powers of 1024)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store prune\'' -l older-than -x -d 'delete blobs not used for DURATION (e.g. 7d, 12h, 30m)'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store prune\'' -l dry-run -d 'print what would be deleted, delete nothing'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store prune\'' -l json -d 'print one JSON document on stdout'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store prune\'' -s h -l help -d 'display help for command'
# swarmpull store help
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull store help\'' -a 'ls prune'
# swarmpull completion
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull completion\'' -a 'bash zsh fish'
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull completion\'' -s h -l help -d 'display help for command'
# swarmpull help
complete -c swarmpull -n 'test (__swarmpull_command) = \'swarmpull help\'' -a 'pull resolve serve store completion'
