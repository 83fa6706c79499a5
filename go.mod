module memstore

go 1.26
