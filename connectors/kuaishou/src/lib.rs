//! quanyu connector for kuaishou (being written).
